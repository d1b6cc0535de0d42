"""app/pivot/history.py: the event log's node states become the Machines' status on the way into the
cluster, and an event log again on the way back; either way an installed machine stays installed
(the boot policy answers it "boot from your disk"), and nothing secret or unescaped crosses over."""

from __future__ import annotations

import pytest

from app.events import Event, EventLog
from app.events.model import NodeState
from app.pivot import history
from app.serve.cluster import windows

CP, WORKER, IDLE = "52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:03"
KNOWN = {CP: "cp-1", WORKER: "worker-1", IDLE: "worker-2"}
PATH = ["dhcp", "tftp", "ipxe", "kernel", "install-ignition", "installing", "installed", "final-ignition",
        "kubeadm", "joined", "ready"]


def logged(output, stamp=lambda i: f"2026-12-06T10:{i:02d}:00.000Z") -> dict[str, NodeState]:
    """cp-1 walked the whole path; worker-1 failed while installing (with a forged terminal line);
    worker-2 was never seen; and a stranger PXE-booted."""
    log = EventLog(output, KNOWN)
    log.open()
    for i, phase in enumerate(PATH):
        log.record(Event(phase, mac=CP, source="node", ts=stamp(i)))
    log.record(Event("ipxe", mac=WORKER, detail={"window": "open", "ip": "10.0.0.21"}, ts=stamp(20)))
    log.record(Event("install-ignition", mac=WORKER, detail={"credential": "ab" * 32}, ts=stamp(21)))
    log.record(Event("installing", mac=WORKER, source="node", ts=stamp(22)))
    log.record(Event("failed", mac=WORKER, source="node", message="disk\x1b[2J gone\nOK", ts=stamp(23)))
    log.record(Event("discovered", mac="52:54:00:99:99:99"))
    log.close()
    return history.node_states(output, KNOWN)


def machine(name: str, mac: str, status: dict | None = None) -> dict:
    return {"apiVersion": "bootstrap-node.io/v1alpha1", "kind": "Machine", "metadata": {"name": name},
            "spec": {"mac": mac}, **({"status": status} if status is not None else {})}


MACHINES = [machine(name, mac) for mac, name in KNOWN.items()]


def test_each_machine_starts_with_its_nodes_phase_and_an_installed_one_says_so(tmp_path):
    started = history.statuses(MACHINES, logged(tmp_path))
    assert set(started) == {"cp-1", "worker-1"}  # worker-2 has nothing to carry; the stranger is no Machine
    cp = started["cp-1"]
    assert cp["phase"] == "ready" and cp[windows.FIELD] == {"installed": True}
    assert [s["phase"] for s in cp["timeline"]] == PATH
    assert cp["timeline"][0]["time"].startswith("2026-12-06T10:00:00") and cp["timeline"][0]["time"].endswith("Z")
    worker = started["worker-1"]
    assert worker["phase"] == "installing" and windows.FIELD not in worker


def test_no_window_and_no_credential_crosses_over(tmp_path):
    worker = history.statuses(MACHINES, logged(tmp_path))["worker-1"]
    assert "ab" * 32 not in repr(worker) and "10.0.0.21" not in repr(worker)  # the open window stays behind


def test_a_failure_text_is_spelled_out(tmp_path):
    error = history.statuses(MACHINES, logged(tmp_path))["worker-1"]["lastError"]
    assert "\x1b" not in error and "\n" not in error and "disk" in error and "gone" in error


def test_an_output_that_never_served_has_nothing_to_carry(tmp_path):
    assert history.node_states(tmp_path, KNOWN) == {}
    assert history.statuses(MACHINES, {}) == {}


def test_the_cluster_side_reads_an_installed_machine_as_installed(tmp_path):
    """What the cluster-mode leader's policy input is made of (windows.decode/merged): installed."""
    started = history.statuses(MACHINES, logged(tmp_path))
    for name, installed in (("cp-1", True), ("worker-1", False)):
        saved = windows.decode(name, "1", started[name], 3600)
        assert saved.installed is installed and saved.window is None
        assert windows.merged(CP, None, saved).installed is installed


def test_the_way_back_replays_to_the_same_phases_and_installed_ness(tmp_path):
    states = logged(tmp_path / "before")
    machines = [machine(m["metadata"]["name"], m["spec"]["mac"], history.statuses(MACHINES, states).get(
        m["metadata"]["name"])) for m in MACHINES]
    back = tmp_path / "back"
    back.mkdir()
    (back / "events.jsonl").write_bytes(history.event_log(machines))
    replayed = EventLog(back, KNOWN, only_known=True).nodes
    assert set(replayed) == {CP, WORKER}
    for mac in (CP, WORKER):
        assert (replayed[mac].phase, replayed[mac].installed) == (states[mac].phase, states[mac].installed)
        assert [p for _, p in replayed[mac].history] == [p for _, p in states[mac].history]
        assert replayed[mac].window is None and replayed[mac].callback_credential == ""
        assert replayed[mac].first_seen == replayed[mac].history[0][0]  # its time in phase survives


@pytest.mark.parametrize("status, expected", [
    (None, None),  # never written: the machine starts over on the appliance
    ({}, None),
    ({"phase": "bogus"}, None),
    ({"installWindow": {"installed": True}}, ("installed", True)),  # installed-ness alone is enough
    ({"phase": "joined"}, ("joined", True)),  # past installed is installed
    ({"phase": "kernel", "timeline": "not a list", "lastError": "x"}, ("kernel", False)),
    ({"phase": "ready", "timeline": [{"phase": "ready", "time": "yesterday"}, "junk"]}, ("ready", True)),
])
def test_the_way_back_takes_only_what_it_can_trust(status, expected):
    state = history.state_of(machine("m", CP, status))
    assert (None if state is None else (state.phase, state.installed)) == expected
    if state is not None:
        assert all(ts for ts, _ in state.history)  # a time that does not parse is left out


def test_a_pending_reinstall_goes_back_as_a_machine_that_starts_over():
    installed = {"phase": "ready", "installWindow": {"installed": True}, "observedReinstall": 1}
    pending = {**machine("m", CP, installed), "spec": {"mac": CP, "reinstall": 2}}
    assert history.state_of(pending) is None
    acted_on = {**machine("m", CP, installed), "spec": {"mac": CP, "reinstall": 1}}
    assert history.state_of(acted_on).installed


def test_the_way_back_is_bounded_whatever_the_status_holds(tmp_path):
    """A status is anyone's with the right to write it: an oversized error or timeline must not make
    a line the log's reader skips (the machine's installed-ness with it)."""
    huge = {"phase": "ready", "installWindow": {"installed": True}, "lastError": "x" * 1_200_000,
            "timeline": [{"phase": "ready", "time": "2026-12-06T10:00:00Z"}] * 50_000}
    state = history.state_of(machine("cp-1", CP, huge))
    assert len(state.error) == history.MAX_ERROR and len(state.history) == 1
    (tmp_path / "events.jsonl").write_bytes(history.event_log([machine("cp-1", CP, huge)]))
    assert EventLog(tmp_path, KNOWN, only_known=True).nodes[CP].installed


@pytest.mark.parametrize("live, written", [
    ({"spec": {"mac": CP}}, True),  # new: it starts with its node's status
    ({"spec": {"mac": CP}, "status": {"phase": "installing"}}, False),  # the cluster's word is newer
    ({"spec": {"mac": CP}, "status": {"observedReinstall": 1}}, False),  # a leader cleared it on a reinstall
    ({"spec": {"mac": CP, "reinstall": 1}}, False),  # a reinstall asked for: the log's "installed" is stale
])
def test_pivot_writes_a_status_only_onto_a_machine_the_cluster_has_said_nothing_of(monkeypatch, live, written):
    from app.pivot.apply import Sender
    from app.wait import kube
    sent = []
    obj = {"apiVersion": "bootstrap-node.io/v1alpha1", "kind": "Machine", "metadata": {"name": "cp-1", "namespace": "p"},
           "spec": {"mac": CP}}
    monkeypatch.setattr(kube, "get", lambda api, path: {**live, "metadata": {"resourceVersion": "7"}})
    monkeypatch.setattr(kube, "answer", lambda api, method, path, body, *rest: sent.append((method, path, body))
                        or (200, {}))
    assert Sender(object(), 5)._start_status(obj, {"phase": "ready"}) is written
    assert sent == ([("PATCH", "/apis/bootstrap-node.io/v1alpha1/namespaces/p/machines/cp-1/status",
                      {"metadata": {"resourceVersion": "7"}, "status": {"phase": "ready"}})] if written else [])
