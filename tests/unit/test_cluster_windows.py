"""app/serve/cluster/windows.py: an install as `status.installWindow` holds it, and back into the
policy's input (what a new leader decides from); and machine_watch's version rules that keep the
view of a Machine from going back in time."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from app.events.model import Event, EventKind, NodeState, Phase, Window
from app.serve.boot import policy
from app.serve.cluster.machine_watch import MachineView, apply_event, fold_in, newer
from app.serve.cluster.windows import after, decode, encode, merged, status_patch
from app.serve.settings import Bind, BootSettings
from tests.support.fakes import node_store

MAC, ADDRESS, HOUR = "52:54:00:00:00:11", "10.0.0.50", 3600.0
OPENED = 1_765_000_000.123
SETTINGS = BootSettings(window_seconds=HOUR, bind=Bind.link)
INSTALL, CALLBACK = policy.digest("install-cred"), policy.digest("callback-cred")


def window(**flags) -> Window:
    return Window(OPENED, ADDRESS, MAC, **flags)


STATES = {
    "booted": NodeState(MAC, window=window()),
    "install served": NodeState(MAC, window=window(install_credential=INSTALL, install_served=True)),
    "final served": NodeState(MAC, window=window(install_credential=INSTALL, install_served=True, final_served=True),
                              callback_credential=CALLBACK, callback_since=OPENED + 60),
    "installed": NodeState(MAC, installed=True, callback_credential=CALLBACK, callback_since=OPENED + 60),
    "joined": NodeState(MAC, installed=True),
    "contested": NodeState(MAC, window=Window(OPENED, ADDRESS, "", contested=True)),
}


@pytest.mark.parametrize("name", STATES)
def test_what_the_status_holds_gives_the_policy_the_same_install(name):
    state = STATES[name]
    held = json.loads(json.dumps(encode(state, HOUR)))  # as the API server stores and returns it
    saved = decode("cp-1", "9", {"installWindow": held}, HOUR)
    back = merged(MAC, None, saved)
    assert (back.window, back.callback_credential, back.installed) == (state.window, state.callback_credential,
                                                                       state.installed)
    assert back.callback_since == pytest.approx(state.callback_since, abs=1e-6)


def test_the_status_holds_hashes_and_deadlines_never_a_credential():
    state = NodeState(MAC)
    state.apply(Event(Phase.IPXE, mac=MAC, detail={"window": "open", "ip": ADDRESS, "link_mac": MAC}))
    state.apply(Event(Phase.INSTALL_IGNITION, mac=MAC, detail={"credential": policy.digest("install-cred")}))
    state.apply(Event(EventKind.FINAL_CONFIG, mac=MAC, detail={"credential": policy.digest("callback-cred")}))
    held = encode(state, HOUR)
    text = json.dumps(held)
    assert "install-cred" not in text and "callback-cred" not in text
    assert held["installCredentialHash"] == INSTALL and held["callbackCredentialHash"] == CALLBACK
    assert held["deadline"] > held["opened"] and held["installServed"] and held["finalServed"]


def test_nothing_to_hold_is_no_window():
    assert encode(None, HOUR) is None and encode(NodeState(MAC, phase="kernel"), HOUR) is None


@pytest.mark.parametrize(("status", "installed"), [
    ({"phase": "ready"}, True),  # pivoted from the appliance: installed, it boots from its disk
    ({"phase": "installed"}, True),
    ({"phase": "install-ignition"}, False),
    ({"installWindow": {"installed": True}}, True),
    ({}, False),
])
def test_a_machine_is_installed_by_its_phase_or_its_window(status, installed):
    assert decode("cp-1", "1", status, HOUR).installed is installed


def test_a_window_without_its_opening_time_is_no_window():
    saved = decode("cp-1", "1", {"installWindow": {"opened": "not a time", "installServed": True}}, HOUR)
    assert saved.window is None


def test_the_machine_wins_over_a_log_that_is_behind_it():
    local = NodeState(MAC, name="cp-1", phase="kernel", history=[("t", "kernel")], window=window())
    saved = decode("cp-1", "9", {"installWindow": encode(STATES["install served"], HOUR)}, HOUR)
    state = merged(MAC, local, saved)
    assert state.window.install_served and state.window.install_credential == INSTALL
    assert (state.phase, state.history) == ("kernel", [("t", "kernel")])  # the log's own parts stay
    assert not local.window.install_served  # the log's state is not touched
    # A reinstall cleared the Machine: a window a log still holds is gone with it.
    assert merged(MAC, local, decode("cp-1", "10", {}, HOUR)).window is None
    assert merged(MAC, local, None) is local  # no Machine in view: the log's state as it is


def test_after_applies_only_this_nodes_events_to_a_copy():
    state = NodeState(MAC)
    opened = after(MAC, state, [Event(Phase.IPXE, mac=MAC, detail={"window": "open", "ip": ADDRESS}),
                                Event(Phase.IPXE, mac="52:54:00:00:00:12", detail={"window": "open"})])
    assert opened.window.address == ADDRESS and state.window is None
    assert after(MAC, state, [Event(EventKind.ALERT, mac="52:54:00:00:00:12")]) is state


def test_a_patch_removes_what_the_new_window_no_longer_has():
    stored = encode(STATES["final served"], HOUR)
    patch = status_patch(stored, encode(STATES["installed"], HOUR))["installWindow"]
    assert patch["opened"] is None and patch["installServed"] is None and patch["installed"] is True
    assert patch["callbackCredentialHash"] == CALLBACK
    assert status_patch(stored, None) == {"installWindow": None}
    assert "somethingElse" not in status_patch({"somethingElse": 1}, {"installed": True})["installWindow"]


# -- what a new leader decides from the Machine alone (its own log knows nothing) ----------------------
def taken_over(state: NodeState) -> NodeState:
    return merged(MAC, None, decode("cp-1", "9", {"installWindow": encode(state, HOUR)}, HOUR))


FINAL = policy.Request("ignition", {"mac": MAC, "os": "installed"}, ADDRESS, MAC, "install-cred", OPENED + 120)


@pytest.mark.parametrize(("case", "request_", "answer", "reason"), [
    ("the final config with the install's credential", FINAL, policy.Answer.CONFIG, ""),
    ("a wrong credential", replace(FINAL, credential="guess"), policy.Answer.REFUSED, policy.BAD_CREDENTIAL),
    ("the install config again", replace(FINAL, labels={"mac": MAC}, credential=None), policy.Answer.REFUSED,
     policy.ALREADY_SERVED),
    ("after the deadline", replace(FINAL, now=OPENED + HOUR + 1), policy.Answer.REFUSED, policy.NO_WINDOW),
])
def test_a_new_leader_honours_the_window_the_old_one_wrote(case, request_, answer, reason):
    state = taken_over(STATES["install served"])
    decision = policy.decide_config(request_, node_store({"cp-1": MAC}), lambda mac: state, SETTINGS,
                                    lambda: "fresh")
    assert (decision.answer, decision.reason) == (answer, reason), case


def test_a_new_leader_takes_the_callbacks_the_old_one_would_have():
    served = taken_over(STATES["install served"])
    assert policy.callback_allowed("installed", "install-cred", served, SETTINGS, OPENED + 120)
    assert not policy.callback_allowed("installed", "guess", served, SETTINGS, OPENED + 120)
    installed = taken_over(STATES["installed"])
    assert policy.callback_allowed("joined", "callback-cred", installed, SETTINGS, OPENED + 120)
    assert not policy.callback_allowed("joined", "callback-cred", installed, SETTINGS, OPENED + 60 + HOUR + 1)
    contested = taken_over(STATES["contested"])
    decision = policy.decide_config(replace(FINAL, labels={"mac": MAC}), node_store({"cp-1": MAC}),
                                    lambda mac: contested, SETTINGS, lambda: "fresh")
    assert decision.reason == policy.CONTESTED_WINDOW


# -- the view of a Machine never goes back in time -----------------------------------------------------
def machine(version: str, generation: int = 1, phase: str = "") -> dict:
    return {"metadata": {"name": "cp-1", "resourceVersion": version, "generation": generation},
            "spec": {"mac": MAC}, "status": {"phase": phase} if phase else {}}


def test_a_watch_event_older_than_a_write_answer_is_not_taken():
    known = {"cp-1": MachineView.of(machine("5"))}
    assert fold_in(known, machine("7", phase="ipxe"))  # what our own write returned
    apply_event(known, {"type": "MODIFIED", "object": machine("6")})  # the watch, behind it
    assert known["cp-1"].version == "7" and known["cp-1"].phase == "ipxe"
    apply_event(known, {"type": "MODIFIED", "object": machine("8", phase="kernel")})
    assert known["cp-1"].phase == "kernel"


def test_learning_never_takes_a_spec_change_from_the_watch():
    known = {"cp-1": MachineView.of(machine("5"))}
    assert not fold_in(known, machine("9", generation=2))  # the watch must see it to render it
    assert known["cp-1"].version == "5"


@pytest.mark.parametrize(("version", "than", "taken"), [("10", "9", True), ("9", "10", False), ("9", "9", True),
                                                        ("abc", "9", True)])
def test_versions_compare_as_numbers_when_they_are(version, than, taken):
    assert newer(version, than) is taken
