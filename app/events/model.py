"""What the event log holds: the phases a node walks, one event, and the node state (install window
included) that replaying events builds. Pure data: events/log.py reads and writes the file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from enum import Enum

from app.events.disks import Disk, disks_of


class Phase(str, Enum):
    """The path a node walks, in order. A node never moves backwards except through `reinstall`."""

    DHCP = "dhcp"
    TFTP = "tftp"
    IPXE = "ipxe"
    KERNEL = "kernel"
    INSTALL_IGNITION = "install-ignition"
    INSTALLING = "installing"
    INSTALLED = "installed"
    FINAL_IGNITION = "final-ignition"
    KUBEADM = "kubeadm"
    JOINED = "joined"
    READY = "ready"


class EventKind(str, Enum):
    """Every kind of event that is not a phase (a phase is its own kind: `Phase`)."""

    FAILED = "failed"  # a node reported a failure (it keeps its phase)
    REINSTALL = "reinstall"  # an operator's `reinstall`: the node starts over
    DISCOVERED = "discovered"  # a machine in no group PXE-booted
    ALERT = "alert"  # a request refused; detail.reason says why
    BOOT_ASSET = "boot-asset"  # a known node downloaded a boot asset (kernel, initrd, image): Phase.KERNEL
    HTTP = "http"  # any other request worth a line (/metadata, a download no node is tied to)
    LOCAL_BOOT = "local-boot"  # an installed node PXE-booted and was told to boot from its disk
    IMAGE_PULL = "image-pull"  # an image asked for by tag from the registry
    WINDOW_CONTESTED = "window-contested"  # a second machine asked to boot as a node during its install
    FINAL_CONFIG = "final-config"  # the final (secret-bearing) config went out
    NODE_STATE = "node-state"  # a node's whole state, written when the log is compacted
    ALERT_SUMMARY = "alert-summary"  # alert counts carried over a compaction
    LOG_COMPACTED = "log-compacted"  # the first line of a compacted log: what follows is the whole state
    SERVE_STARTED = "serve-started"
    SERVE_STOPPED = "serve-stopped"
    LEADING = "leading"  # serve --leader-elect took the Lease: it answers PXE and the boot API from now on
    LEADING_STOPPED = "leading-stopped"  # it lost or released the Lease and stopped its PXE children
    WORKER_RESTARTED = "worker-restarted"
    DNSMASQ_STARTED = "dnsmasq-started"
    DNSMASQ_READY = "dnsmasq-ready"
    DNSMASQ_EXITED = "dnsmasq-exited"
    DNSMASQ_RESTARTED = "dnsmasq-restarted"
    DNSMASQ = "dnsmasq"  # any other line dnsmasq logged about TFTP
    CHRONYD_STARTED = "chronyd-started"  # the time server (bootstrap.time_server)
    CHRONYD_EXITED = "chronyd-exited"
    CHRONYD_RESTARTED = "chronyd-restarted"
    TFTP_ERROR = "tftp-error"
    API_READY = "api-ready"  # `wait` saw the Kubernetes API answer
    ADDONS = "addons"  # `wait`'s progress installing the add-ons


# Kinds older logs wrote, read as today's: "kernel" was written for any boot asset a known node fetched.
LEGACY_KINDS = {"kernel": EventKind.BOOT_ASSET.value}

PHASES = [p.value for p in Phase]
# What a node itself may POST to /events.
CALLBACK_PHASES = {"installing", "installed", "final-ignition", "kubeadm", "joined", "failed"}
# Reported during the install (install-stage credential) and after it (the final config's).
INSTALL_CALLBACKS = {"installing", "installed"}
FINAL_CALLBACKS = {"final-ignition", "kubeadm", "joined"}
# Short names for the kinds the log and the policy test most.
FINAL_CONFIG_SERVED = EventKind.FINAL_CONFIG
NODE_STATE = EventKind.NODE_STATE
ALERT_SUMMARY = EventKind.ALERT_SUMMARY
COMPACTED = EventKind.LOG_COMPACTED
ALERT = EventKind.ALERT
CONTESTED = EventKind.WINDOW_CONTESTED
# Sources that write from other processes (`reinstall`, `wait`); a running serve follows them.
EXTERNAL_SOURCES = {"cli", "wait"}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(ts: str) -> float:
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass
class Event:
    kind: str  # a Phase or an EventKind, kept as its plain string value
    mac: str = ""
    node: str = ""
    message: str = ""
    source: str = ""  # "http", "dnsmasq", "node", "serve", "cli", "wait"
    detail: dict = field(default_factory=dict)
    ts: str = field(default_factory=now_iso)

    def __post_init__(self) -> None:
        if isinstance(self.kind, Enum):
            self.kind = self.kind.value

    def line(self) -> str:
        # Built by hand, keys in a fixed order: this runs for every boot-relevant request.
        data = {"detail": self.detail, "kind": self.kind, "mac": self.mac, "message": self.message,
                "node": self.node, "source": self.source, "ts": self.ts}
        return json.dumps({k: v for k, v in data.items() if v}, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Event | None:
        try:
            data = json.loads(text)
            event = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError, RecursionError):
            return None
        if not isinstance(event.detail, dict) or not isinstance(event.kind, str):
            return None
        event.kind = LEGACY_KINDS.get(event.kind, event.kind)
        return event


@dataclass
class Window:
    """One install: opened by the node's PXE boot (`ipxe`), closed by `installed`, `reinstall`, or
    its timeout. Secret-bearing configs go out only inside it, each once."""

    opened: float  # epoch seconds
    address: str  # the address that PXE-booted
    link_mac: str = ""  # that address's MAC in the appliance's neighbour table, when it was on our L2
    install_credential: str = ""  # sha256 of the credential the install config carried
    install_served: bool = False
    final_served: bool = False
    contested: bool = False  # a second machine asked for this node's boot: no secret goes out

    def is_open(self, now: float, timeout: float) -> bool:
        return now - self.opened < timeout

    @property
    def in_use(self) -> bool:
        """A config went out or a second machine claimed the node: this window is never renewed."""
        return self.install_served or self.final_served or self.contested


@dataclass
class NodeState:
    mac: str
    name: str = ""
    phase: str = ""
    error: str = ""
    installed: bool = False
    updated: str = ""
    first_seen: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)  # (ts, phase)
    window: Window | None = None
    callback_credential: str = ""  # sha256 of the final config's credential (post-install callbacks)
    # When the final config (and that credential) went out, epoch seconds. The credential is spent
    # by the node's `joined` report or, failing that, when as long as an install window has passed.
    callback_since: float = 0.0
    disks: list[Disk] = field(default_factory=list)  # as the machine last reported them (install script)

    def snapshot_event(self) -> Event:
        """This state as one event: replaying it restores the state (compaction)."""
        window = self.window
        detail = {"phase": self.phase, "error": self.error, "installed": self.installed,
                  "first_seen": self.first_seen, "history": [list(h) for h in self.history],
                  "callback_credential": self.callback_credential, "callback_since": self.callback_since,
                  "disks": [d.as_dict() for d in self.disks],
                  "window": None if window is None else {
                      "opened": window.opened, "address": window.address, "link_mac": window.link_mac,
                      "install_credential": window.install_credential, "install_served": window.install_served,
                      "final_served": window.final_served, "contested": window.contested}}
        return Event(NODE_STATE, mac=self.mac, node=self.name, source="serve", detail=detail, ts=self.updated)

    def _restore(self, detail: dict) -> None:
        self.phase, self.error = str(detail.get("phase", "")), str(detail.get("error", ""))
        self.installed = bool(detail.get("installed"))
        self.first_seen = str(detail.get("first_seen", "")) or self.first_seen
        self.history = [(str(ts), str(phase)) for ts, phase in detail.get("history", [])]
        self.callback_credential = str(detail.get("callback_credential", ""))
        self.callback_since = float(detail.get("callback_since") or 0.0)
        self.disks = disks_of(detail) or []
        window = detail.get("window")
        self.window = Window(**window) if isinstance(window, dict) else None

    def apply(self, event: Event) -> None:
        if event.kind == NODE_STATE:
            try:
                self._restore(event.detail)
            except (TypeError, ValueError):
                pass  # a damaged snapshot line: the node starts over as pending
            self.updated = event.ts
            return
        self.first_seen = self.first_seen or event.ts
        self.updated = event.ts
        if event.node:
            self.name = event.node
        if event.kind == EventKind.REINSTALL:
            self.phase, self.error, self.installed, self.history, self.window = "", "", False, [], None
            return
        self._apply_window(event)
        if event.source == "node" and (disks := disks_of(event.detail)) is not None:
            self.disks = disks  # kept through a reinstall: they are the machine's, not the install's
        if event.kind == Phase.JOINED and event.source == "node":
            self.callback_credential = ""  # its last use: a sniffed copy is worth nothing from here on
        if event.kind == EventKind.FAILED:
            self.error = event.message or "failed"
        elif event.kind == EventKind.BOOT_ASSET:
            self._advance(Phase.KERNEL, event.ts)
        elif event.kind in PHASES:
            self._advance(event.kind, event.ts)

    def _advance(self, phase: str, ts: str) -> None:
        self.error = ""
        if self.phase and phase == Phase.INSTALL_IGNITION and self.installed:
            return
        if not self.phase or PHASES.index(phase) >= PHASES.index(self.phase):
            if phase != self.phase:
                self.history.append((ts, Phase(phase).value))
            self.phase = Phase(phase).value
        if phase == Phase.INSTALLED:
            self.installed = True

    def _apply_window(self, event: Event) -> None:
        detail = event.detail
        if event.kind == Phase.IPXE and detail.get("window") == "open":
            self.window = Window(epoch(event.ts), str(detail.get("ip", "")), str(detail.get("link_mac", "")))
        elif self.window is None:
            return
        elif event.kind == Phase.INSTALL_IGNITION and detail.get("credential"):
            self.window.install_served = True
            self.window.install_credential = str(detail["credential"])
        elif event.kind == FINAL_CONFIG_SERVED:
            self.window.final_served = True
            self.callback_credential = str(detail.get("credential", ""))
            self.callback_since = epoch(event.ts)
        elif event.kind == CONTESTED:
            self.window.contested = True
        elif event.kind == Phase.INSTALLED and event.source == "node":
            self.window = None


STATE_KINDS = frozenset(k.value for k in (EventKind.BOOT_ASSET, EventKind.FAILED, EventKind.REINSTALL,
                                           EventKind.FINAL_CONFIG, EventKind.WINDOW_CONTESTED, EventKind.NODE_STATE))


def changes_state(kind: str) -> bool:
    return kind in PHASES or kind in STATE_KINDS
