"""The boot policy in memory: decisions for every kind of request, against a dict-backed store and
node states built by applying events (as the event log does)."""

from __future__ import annotations

import pytest

from app.events import Event, NodeState, epoch
from app.serve.boot import policy, render
from app.serve.boot.store import Group
from tests.support.fakes import MemoryStore, node_store

MAC, OTHER = "52:54:00:00:00:11", "52:54:00:66:66:66"
STORE = node_store({"cp-1": MAC})
KNOWN = {MAC: "cp-1"}
LINK = policy.Settings()
T0 = epoch("2026-01-01T00:00:00Z")


def state_after(*events: Event) -> NodeState:
    state = NodeState(MAC, "cp-1")
    for event in events:
        state.apply(event)
    return state


def ipxe(address="10.0.0.50", link=MAC, now=T0 + 1, labels=None, state=None, settings=LINK):
    req = policy.Request("ipxe", labels or {"mac": MAC}, address, link, None, now)
    return policy.decide_ipxe(req, STORE, state, KNOWN, settings)


def config(state, stage="install", address="10.0.0.50", link=MAC, credential=None, now=T0 + 1, settings=LINK,
           store=STORE):
    labels = {"mac": MAC, **({"os": "installed"} if stage == "final" else {})}
    req = policy.Request("ignition", labels, address, link, credential, now)
    return policy.decide_config(req, store, lambda mac: state if mac == MAC else None, settings, lambda: "cred-1")


def opened(address="10.0.0.50", link=MAC) -> Event:
    return Event("ipxe", mac=MAC, ts="2026-01-01T00:00:00Z",
                 detail={"window": "open", "ip": address, **({"link_mac": link} if link else {})})


def served_install(credential="cred-0") -> Event:
    return Event("install-ignition", mac=MAC, detail={"credential": policy.digest(credential)})


def body(decision) -> str:
    """What the boot service answers for a script decision (the policy itself holds no bodies)."""
    return render.script_text(decision, LINK.retry_seconds)


def reasons(decision) -> list[str]:
    return [e.detail["reason"] for e in decision.events if e.kind == "alert"]


# -- /ipxe ---------------------------------------------------------------------------------------------
def test_pxe_of_a_known_node_opens_its_window_bound_to_the_machine():
    decision = ipxe()
    assert decision.status == 200 and body(decision).startswith("#!ipxe\nkernel /assets/k")
    state = state_after(*decision.events)
    assert state.window.link_mac == MAC and state.window.address == "10.0.0.50"


@pytest.mark.parametrize("link,settings,reason", [
    (OTHER, LINK, policy.SPOOFED_PXE),
    (None, LINK, policy.NOT_ON_LINK),
])
def test_pxe_from_another_machine_opens_nothing(link, settings, reason):
    decision = ipxe(link=link, settings=settings)
    assert decision.status == 403 and reasons(decision) == [reason]
    assert state_after(*decision.events).window is None


def test_address_binding_opens_a_window_without_a_neighbour_entry():
    decision = ipxe(link=None, settings=policy.Settings(bind="address"))
    assert state_after(*decision.events).window.address == "10.0.0.50"


def test_second_machine_in_an_open_window_contests_it_and_the_same_one_reboots_it():
    state = state_after(opened())
    contested = ipxe(address="10.0.0.99", state=state)
    assert reasons(contested) == [policy.CONTESTED_WINDOW]
    assert state_after(opened(), *contested.events).window.contested
    again = ipxe(state=state)  # nothing went out yet: the node rebooting gets a fresh window
    assert not reasons(again) and again.events[0].detail["window"] == "open"


def contested() -> Event:
    return Event("window-contested", mac=MAC, detail={"remote": "10.0.0.99"})


def served_final() -> Event:
    return Event("final-config", mac=MAC, detail={"credential": policy.digest("cred-f")})


@pytest.mark.parametrize("history,address,link", [
    ((served_install(),), "10.0.0.50", MAC),  # the replay: the booted machine's own MAC and address
    ((served_install(), served_final()), "10.0.0.50", MAC),
    ((served_install(),), "10.0.0.99", MAC),
    ((contested(),), "10.0.0.50", MAC),  # a contested window, asked from its first address
    ((contested(),), "10.0.0.99", MAC),
], ids=["install-served-replay", "final-served-replay", "install-served-elsewhere", "contested-first-address",
        "contested-again"])
def test_a_window_in_use_is_never_renewed_by_a_boot(history, address, link):
    before = state_after(opened(), *history)
    decision = ipxe(address=address, link=link, state=before)
    assert decision.status == 200 and "kernel" not in body(decision) and "reinstall cp-1" in body(decision)
    [alert] = [e for e in decision.events if e.kind == "alert"]
    assert alert.detail["reason"] == policy.WINDOW_IN_USE
    assert (alert.detail["remote"], alert.detail["link_mac"]) == (address, link)
    assert (alert.detail["window_address"], alert.detail["window_link_mac"]) == ("10.0.0.50", MAC)
    after = state_after(opened(), *history, *decision.events).window
    assert after == before.window  # not reopened, not refreshed: the same window, still in use


def test_reinstall_or_the_timeout_clears_a_window_in_use():
    used = (opened(), served_install(), contested())
    after_reinstall = state_after(*used, Event("reinstall", mac=MAC, source="cli"))
    assert ipxe(state=after_reinstall).events[0].detail["window"] == "open"
    timed_out = ipxe(state=state_after(*used), now=T0 + 3601)
    assert timed_out.events[0].detail["window"] == "open" and not reasons(timed_out)


def test_installed_node_boots_from_disk_and_strangers_are_told_why():
    installed = state_after(opened(), Event("installed", mac=MAC, source="node"))
    assert body(ipxe(state=installed)).endswith("exit\n")
    stranger = ipxe(labels={"mac": OTHER})
    assert "no node in cluster.yaml has MAC" in body(stranger) and stranger.events[0].kind == "discovered"
    assert ipxe(labels={"mac": OTHER}, settings=policy.Settings(strict_matchbox=True)).status == 404


# -- /ignition ------------------------------------------------------------------------------------------
def test_install_config_once_inside_the_window_to_the_booted_machine():
    state = state_after(opened())
    decision = config(state)
    assert decision.is_config and decision.credential == "cred-1"
    state.apply(decision.events[0])
    assert state.window.install_served and state.window.install_credential == policy.digest("cred-1")
    assert reasons(config(state)) == [policy.ALREADY_SERVED]


@pytest.mark.parametrize("state,kwargs,reason", [
    (None, {}, policy.NO_WINDOW),
    ("open", {"now": T0 + 3601}, policy.NO_WINDOW),
    ("open", {"link": OTHER}, policy.NOT_THE_BOOTED_MACHINE),
    ("open", {"link": None}, policy.NOT_ON_LINK),
    ("contested", {}, policy.CONTESTED_WINDOW),
])
def test_install_config_refusals(state, kwargs, reason):
    events = {"open": [opened()], "contested": [opened(), Event("window-contested", mac=MAC)], None: []}[state]
    decision = config(state_after(*events), **kwargs)
    assert decision.status == 403 and not decision.is_config and reasons(decision) == [reason]


def test_the_installer_may_fetch_from_a_new_address_on_the_same_machine():
    assert config(state_after(opened()), address="10.0.0.77").is_config


def test_final_config_needs_the_install_credential_and_goes_out_once():
    state = state_after(opened(), served_install("cred-0"))
    for credential in (None, "wrong"):
        assert reasons(config(state, "final", credential=credential)) == [policy.BAD_CREDENTIAL]
    decision = config(state, "final", credential="cred-0", link=None, address="192.0.2.9")  # another NIC
    assert decision.is_config and decision.events[0].kind == "final-config"
    state.apply(decision.events[0])
    assert state.callback_credential == policy.digest("cred-1")
    assert reasons(config(state, "final", credential="cred-0")) == [policy.ALREADY_SERVED]


def test_a_group_without_a_mac_selector_is_never_served_on_the_own_tree():
    store = MemoryStore([Group("all", "p", {}, {})], {"p": {"id": "p", "ignition_id": "x.ign"}})
    assert reasons(config(state_after(opened()), store=store)) == [policy.NO_MAC_SELECTOR]


def test_foreign_data_dirs_are_served_like_matchbox():
    decision = config(None, "final", settings=policy.Settings(own_tree=False))
    assert decision.is_config and not decision.events and not decision.credential


# -- callbacks --------------------------------------------------------------------------------------------
def test_callbacks_need_the_credential_of_their_stage():
    during = state_after(opened(), served_install("c1"))
    after = state_after(opened(), served_install("c1"),
                        Event("final-config", mac=MAC, detail={"credential": policy.digest("c2")}),
                        Event("installed", mac=MAC, source="node"))
    allowed = lambda phase, cred, state: policy.callback_allowed(phase, cred, state, LINK, T0 + 5)  # noqa: E731
    assert allowed("installing", "c1", during) and allowed("failed", "c1", during)
    assert not allowed("installing", None, during) and not allowed("installing", "c2", during)
    assert not allowed("joined", "c1", during)
    assert allowed("joined", "c2", after) and allowed("failed", "c2", after)
    assert not allowed("installed", "c1", after)  # installed closed the window
    assert policy.callback_allowed("installed", None, None, policy.Settings(own_tree=False), T0)
