"""The boot policy: what to answer a machine, as a pure function of the request, the data dir and the
node states. A Decision says which answer and carries the events to record; it holds no body: the
boot service (`service.py`) renders it and records its events.

On the appliance's own tree (docs/security.md):
- a PXE boot (`/ipxe`) of a known, not-installed node opens its install window, bound to the machine
  that booted (its MAC on our L2 when the neighbour table knows the address, else its address);
- the install config goes out once, inside the window, to that machine, carrying a fresh credential;
- the final config (secrets) goes out once, inside the window, to whoever presents that credential
  (a server may fetch on another NIC), carrying a second credential for the installed system's
  progress reports;
- everything else that asks for a node's config gets no config and becomes an alert.
A foreign Matchbox data dir (`--matchbox-data`) is served the way Matchbox does: no windows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from app.events import (
    ALERT,
    CONTESTED,
    FINAL_CALLBACKS,
    FINAL_CONFIG_SERVED,
    INSTALL_CALLBACKS,
    Event,
    EventKind,
    NodeState,
    Phase,
)
from app.serve.boot.store import Group, Selector
from app.serve.settings import Bind, BootSettings

Settings = BootSettings  # the policy's knobs, as the settings tree defines them

# Why a request got no config (alert reasons; also the /metrics label and the status page's words).
NO_WINDOW = "no install window is open for this node"
NOT_THE_BOOTED_MACHINE = "asked from a machine other than the one that PXE-booted"
ALREADY_SERVED = "this install's config was already served once"
BAD_CREDENTIAL = "missing or wrong install credential"
CONTESTED_WINDOW = "a second machine asked to boot as this node during its install"
NO_MAC_SELECTOR = "the group selects no single MAC, so its config cannot be bound to a machine"
SPOOFED_PXE = "PXE boot asked for this node from a machine with another MAC"
NOT_ON_LINK = "asked from an address with no entry in the neighbour table (not on the provisioning L2)"
CALLBACK_REFUSED = "callback with a missing or wrong credential"
LINK_CLAIMED = "the MAC behind this address changed during an install (a forged ARP/NDP claim?)"
WINDOW_IN_USE = "PXE boot for a node whose install config already went out or whose window was contested"


@dataclass(frozen=True)
class Request:
    route: str  # "ipxe", "ignition", "generic"
    labels: dict[str, str]
    address: str  # the client's address
    link_mac: str | None = None  # the client's MAC from the neighbour table, when it is on our L2
    credential: str | None = None  # bearer credential presented
    now: float = 0.0  # epoch seconds
    earlier_link_mac: str | None = None  # another MAC the table had behind this address lately (claims.py)


class Answer(str, Enum):
    """What a decision tells the machine; the service renders it."""

    SCRIPT = "script"  # the profile's boot script (iPXE or GRUB)
    CONFIG = "config"  # the group's config: Ignition, a generic file, metadata
    LOCAL_BOOT = "local-boot"  # installed: boot from the disk
    UNKNOWN_MACHINE = "unknown-machine"  # in no group: say how to add it, ask again later
    HELD = "held"  # its install is under way or contested: wait for `reinstall`
    ACCEPTED = "accepted"  # a node's progress report
    REFUSED = "refused"
    NOT_FOUND = "not-found"


@dataclass
class Decision:
    answer: Answer
    status: int = 200
    reason: str = ""  # why it was refused
    node: str = ""  # whom a local-boot, held or unknown-machine script names (node name or MAC)
    group: Group | None = None  # for a script or a config: which group matched
    profile: dict | None = None
    credential: str = ""  # a config carries this credential (the service adds it)
    events: list[Event] = field(default_factory=list)

    @property
    def is_config(self) -> bool:
        return self.answer is Answer.CONFIG


def not_found() -> Decision:
    return Decision(Answer.NOT_FOUND, 404)


def digest(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()


def mac_label(labels: dict[str, str]) -> str:
    return next((v for k, v in labels.items() if k.lower() == "mac"), "")


def group_mac(group: Group) -> str:
    return next((v for k, v in group.selector.items() if k.lower() == "mac" and v), "")


def is_final_stage(group: Group) -> bool:
    """Our groups select the installed system with `os=installed` (groups/node.json.tmpl)."""
    return any(k.lower() == "os" and v == "installed" for k, v in group.selector.items())


def _match(store: Selector, labels: dict[str, str]) -> tuple[Group, dict] | None:
    group = store.select(labels)
    if group is None:
        return None
    profile = store.profile(group.profile)
    return (group, profile) if profile is not None else None


def refuse(req: Request, mac: str, reason: str, status: int = 403, **seen: str) -> Decision:
    """A refusal and its alert; `seen` adds what else the appliance saw (the window's binding)."""
    alert = Event(ALERT, mac=mac, source="http", message=reason,
                  detail={"reason": reason, "route": req.route, "remote": req.address,
                          **({"link_mac": req.link_mac} if req.link_mac else {}), **seen})
    return Decision(Answer.REFUSED, status, reason=reason, events=[alert])


def _claimed(req: Request, mac: str, window, settings: Settings) -> Decision | None:
    """A request about a node from an address whose MAC changed lately, to or from the node's (an
    ARP/NDP claim moves the table's entry; kernel/claims.py): refused, and the node's open window
    contested, so neither machine gets a config until `reinstall`."""
    if not req.earlier_link_mac or mac not in (req.link_mac, req.earlier_link_mac):
        return None
    decision = refuse(req, mac, LINK_CLAIMED, earlier_link_mac=req.earlier_link_mac)
    if window is not None and window.is_open(req.now, settings.window_seconds) and not window.contested:
        decision.events.append(Event(CONTESTED, mac=mac, source="http", detail={"remote": req.address}))
    return decision


def _same_machine(req: Request, mac: str, booted_address: str, settings: Settings) -> bool:
    """The L2 binding when the neighbour table knows the sender; the address that booted only when
    the site is routed (`bind: address`)."""
    if req.link_mac:
        return req.link_mac == mac
    return settings.bind == Bind.address and req.address == booted_address


def _same_requester(req: Request, window) -> bool:
    """A PXE boot again from the same address and link MAC, before any config went out, is the node
    rebooting: a fresh window. From anywhere else while the window is open it is a second machine
    claiming the node (a MAC spoofer, or a lease that changed): nobody gets a config until
    `reinstall`, and it is an alert."""
    return req.address == window.address and (req.link_mac or "") == window.link_mac


# -- /ipxe -----------------------------------------------------------------------------------------
def decide_ipxe(req: Request, store: Selector, state: NodeState | None, known: dict[str, str],
                settings: Settings) -> Decision:
    mac = mac_label(req.labels)
    guard = settings.own_tree and not settings.strict_matchbox
    if mac and guard and state is not None and state.installed:
        return Decision(Answer.LOCAL_BOOT, node=state.name or mac,
                        events=[Event(EventKind.LOCAL_BOOT, mac=mac, source="http",
                                      message="installed: answered exit")])
    matched = _match(store, req.labels)
    if matched is None or not matched[1].get("boot"):
        if mac and guard and mac not in known:
            return Decision(Answer.UNKNOWN_MACHINE, node=mac,
                            events=[Event(EventKind.DISCOVERED, mac=mac, source="http", detail={"ip": req.address})])
        return not_found()
    group, profile = matched
    detail = {"profile": profile["id"], "ip": req.address}
    if not settings.own_tree or mac not in known:
        # A machine that is no node (a Matchbox default group matched it) is a discovery, never a node.
        seen = [Event(Phase.IPXE if mac in known else EventKind.DISCOVERED, mac=mac, source="http",
                      detail=detail)] if mac else []
        return Decision(Answer.SCRIPT, group=group, profile=profile, events=seen)
    claimed = _claimed(req, mac, state.window if state else None, settings)
    if claimed is not None:
        return claimed
    if req.link_mac and req.link_mac != mac:
        return refuse(req, mac, SPOOFED_PXE)
    if not req.link_mac and settings.bind == Bind.link:
        return refuse(req, mac, NOT_ON_LINK)
    events = []
    window = state.window if state else None
    if window and window.is_open(req.now, settings.window_seconds) and window.in_use:
        # Never renewed: a replay of the booted machine's MAC and address would otherwise open a
        # fresh window and receive the secrets again. Only `reinstall` or the timeout clears it.
        held = refuse(req, mac, WINDOW_IN_USE, status=200, window_address=window.address,
                      **({"window_link_mac": window.link_mac} if window.link_mac else {}))
        return Decision(Answer.HELD, node=state.name or mac, events=held.events)
    if window and window.is_open(req.now, settings.window_seconds) and not _same_requester(req, window):
        events.append(refuse(req, mac, CONTESTED_WINDOW).events[0])
        events.append(Event(CONTESTED, mac=mac, source="http", detail={"remote": req.address}))
    else:
        detail.update(window="open", **({"link_mac": req.link_mac} if req.link_mac else {}))
    events.insert(0, Event(Phase.IPXE, mac=mac, source="http", detail=detail))
    return Decision(Answer.SCRIPT, group=group, profile=profile, events=events)


# -- /grub, /metadata --------------------------------------------------------------------------------
def decide_grub(req: Request, store: Selector) -> Decision:
    """Matchbox's GRUB: the matching profile's boot section, no install window (GRUB is not how our
    nodes boot)."""
    matched = _match(store, req.labels)
    if matched is None or not matched[1].get("boot"):
        return not_found()
    return Decision(Answer.SCRIPT, group=matched[0], profile=matched[1])


def decide_metadata(req: Request, store: Selector) -> Decision:
    """Matchbox's metadata: the matching group's variables; a request naming a MAC is an event."""
    group = store.select(req.labels)
    if group is None:
        return not_found()
    mac = mac_label(req.labels)
    events = [Event(EventKind.HTTP, mac=mac, source="http", detail={"route": "/metadata"})] if mac else []
    return Decision(Answer.CONFIG, group=group, events=events)


# -- /ignition, /generic -----------------------------------------------------------------------------
def decide_config(req: Request, store: Selector, state_of: Callable[[str], NodeState | None], settings: Settings,
                  new_credential: Callable[[], str]) -> Decision:
    id_key = f"{req.route}_id"
    matched = _match(store, req.labels)
    if matched is None or not matched[1].get(id_key):
        return not_found()
    group, profile = matched
    if not settings.own_tree:
        return Decision(Answer.CONFIG, group=group, profile=profile)
    mac = group_mac(group)
    if not mac:
        return refuse(req, "", NO_MAC_SELECTOR)
    state = state_of(mac)
    window = state.window if state else None
    if window is None or not window.is_open(req.now, settings.window_seconds):
        return refuse(req, mac, NO_WINDOW)
    if window.contested:
        return refuse(req, mac, CONTESTED_WINDOW)
    claimed = _claimed(req, mac, window, settings)
    if claimed is not None:
        return claimed
    credential = new_credential()
    stage = _final_config if is_final_stage(group) else _install_config
    refusal = stage(req, mac, window, settings)
    if refusal:
        return refuse(req, mac, refusal)
    kind = FINAL_CONFIG_SERVED if is_final_stage(group) else Phase.INSTALL_IGNITION.value
    served = Event(kind, mac=mac, source="http",
                   detail={"route": f"/{req.route}", "group": group.id, "credential": digest(credential)})
    return Decision(Answer.CONFIG, group=group, profile=profile, credential=credential, events=[served])


def _install_config(req: Request, mac: str, window, settings: Settings) -> str | None:
    """Why the install config may not go out (None: it may): once, to the machine that booted."""
    if window.install_served:
        return ALREADY_SERVED
    if not _same_machine(req, mac, window.address, settings):
        return NOT_ON_LINK if settings.bind == "link" and not req.link_mac else NOT_THE_BOOTED_MACHINE
    return None


def _final_config(req: Request, mac: str, window, settings: Settings) -> str | None:
    """Why the final config (secrets) may not go out: once, to whoever holds the install credential."""
    if not req.credential or not window.install_credential or digest(req.credential) != window.install_credential:
        return BAD_CREDENTIAL
    if window.final_served:
        return ALREADY_SERVED
    return None


# -- POST /events ------------------------------------------------------------------------------------
def decide_callback(req: Request, mac: str, phase: str, message: str, state: NodeState | None,
                    settings: Settings, detail: dict | None = None) -> Decision:
    """A node's progress report: its event (with `detail`, already checked: the disks it reported), or a
    refusal (401 without a credential, 403 with a wrong one)."""
    if not callback_allowed(phase, req.credential, state, settings, req.now):
        return refuse(req, mac, CALLBACK_REFUSED, status=401 if req.credential is None else 403)
    return Decision(Answer.ACCEPTED, events=[Event(phase, mac=mac, source="node", message=message,
                                                   detail=dict(detail or {}))])


def callback_allowed(phase: str, credential: str | None, state: NodeState | None, settings: Settings,
                     now: float) -> bool:
    """A progress report changes state only with the credential of this install (install phases)
    or of the final config it received (later phases); `failed` may carry either. The final
    config's credential is spent once the node reported `joined`, or an install window after it
    went out (plain HTTP can be sniffed: a copy must not report for the node for ever)."""
    if not settings.own_tree:
        return True
    if not credential or state is None:
        return False
    presented = digest(credential)
    window = state.window
    install_ok = (window is not None and window.is_open(now, settings.window_seconds)
                  and bool(window.install_credential) and presented == window.install_credential)
    final_ok = (bool(state.callback_credential) and presented == state.callback_credential
                and now - state.callback_since < settings.window_seconds)
    if phase in INSTALL_CALLBACKS:
        return install_ok
    if phase in FINAL_CALLBACKS:
        return final_ok
    return install_ok or final_ok  # failed


__all__ = ["CALLBACK_REFUSED", "Answer", "Decision", "Request", "Settings", "callback_allowed", "decide_config",
           "decide_callback", "decide_grub", "decide_ipxe", "decide_metadata", "digest", "mac_label"]
