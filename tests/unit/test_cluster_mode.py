"""Cluster mode's pure decisions (app/serve/cluster/machine_watch.py): watch event -> action, which
status to write, reinstalls, coalescing and backoff; and the glue's refusal of a foreign --output."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from types import SimpleNamespace

import pytest

from app.cli.cluster_mode import MARKER, Rebuild, hooks, owned
from app.serve.cluster.cluster_mode import ClusterMode, Hooks, RebuildFailed, _note
from app.serve.cluster.machine_watch import (
    Act,
    Backoff,
    Coalescer,
    MachineView,
    Report,
    apply_event,
    due_reinstalls,
    gone,
    resource_version,
    status_patches,
)
from app.serve.cluster.machines_api import Conflict

MAC = "52:54:00:00:00:29"


def obj(name="w-9", generation=1, reinstall=0, observed=None, phase="", error="", version="7") -> dict:
    status = {k: v for k, v in {"observedReinstall": observed, "phase": phase, "lastError": error}.items() if v}
    if observed == 0:
        status["observedReinstall"] = 0
    return {"metadata": {"name": name, "generation": generation, "resourceVersion": version, "uid": "u-1"},
            "spec": {"mac": MAC, "reinstall": reinstall}, "status": status}


def test_added_renders_a_replay_of_a_known_machine_does_not():
    known: dict = {}
    assert apply_event(known, {"type": "ADDED", "object": obj()}) is Act.RENDER
    assert known["w-9"].mac == MAC
    assert apply_event(known, {"type": "ADDED", "object": obj()}) is Act.NOTHING


def test_a_status_write_does_not_render_a_spec_change_does():
    known = {"w-9": MachineView.of(obj())}
    # The leader's own status PATCH comes back as MODIFIED with the same generation: no render loop.
    assert apply_event(known, {"type": "MODIFIED", "object": obj(phase="installed", observed=0)}) is Act.NOTHING
    assert known["w-9"].phase == "installed" and known["w-9"].observed == 0
    assert apply_event(known, {"type": "MODIFIED", "object": obj(generation=2, reinstall=1)}) is Act.RENDER


def test_deleted_renders_once():
    known = {"w-9": MachineView.of(obj())}
    assert apply_event(known, {"type": "DELETED", "object": obj()}) is Act.RENDER
    assert known == {}
    assert apply_event(known, {"type": "DELETED", "object": obj()}) is Act.NOTHING


def test_errors_relist_bookmarks_move_the_version_only():
    known: dict = {}
    expired = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}
    assert apply_event(known, expired) is Act.RELIST and gone(expired)
    assert not gone({"type": "ADDED", "object": obj()})
    bookmark = {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "99"}}}
    assert apply_event(known, bookmark) is Act.NOTHING and resource_version(bookmark) == "99"
    assert known == {}


def test_reinstall_is_due_only_above_what_was_acted_on():
    known = {"new": MachineView.of(obj("new", reinstall=3)),  # never observed: nothing to act on
             "same": MachineView.of(obj("same", reinstall=1, observed=1)),
             "bumped": MachineView.of(obj("bumped", reinstall=2, observed=1))}
    assert [name for name, _ in due_reinstalls(known)] == ["bumped"]


def test_status_patches_carry_only_what_changed_and_are_bounded():
    known = {"a": MachineView.of(obj("a", observed=0, phase="ipxe")),
             "b": MachineView.of(obj("b", observed=0, phase="installed")),
             "c": MachineView.of(obj("c", reinstall=2))}
    phases = {MAC: ("installed", "")}  # every view shares the MAC here: one log state
    patches = status_patches(known, phases, limit=10)
    assert patches == {"a": {"phase": "installed"}, "c": {"phase": "installed", "observedReinstall": 2}}
    assert list(status_patches(known, phases, limit=1)) == ["a"]
    failing = status_patches({"b": known["b"]}, {MAC: ("installed", "disk not found")}, limit=10)
    assert failing == {"b": {"lastError": "disk not found"}}
    cleared = status_patches({"e": MachineView.of(obj("e", observed=0, phase="installed", error="old"))},
                             {MAC: ("installed", "")}, limit=10)
    assert cleared == {"e": {"lastError": None}}  # merge patch null: the error goes


def test_a_machine_the_log_has_nothing_new_about_gets_no_phase_or_error_written():
    known = {"e": MachineView.of(obj("e", reinstall=1, observed=0, phase="installed", error="old"))}
    # Its reinstall is written (with the install, phase and timeline it clears), its lastError is left alone.
    assert status_patches(known, {}, limit=10) == {"e": {"observedReinstall": 1, "installWindow": None,
                                                         "phase": None, "timeline": None}}


async def test_a_new_term_writes_what_the_log_learnt_in_it_not_what_it_held_before():
    """A replica leading again holds an older log than the Machines: its `installed` from before must
    not come back over a reinstall another leader made meanwhile."""
    api = StandInApi([obj("w-9", observed=1, reinstall=1)])
    leading, states = [False], {MAC: ("installed", "")}  # what this replica's log held from its last term
    hooks = Hooks(rebuild=lambda: "rendered", refresh=lambda: None, leading=lambda: leading[0],
                  node_state=lambda mac: states[mac], reinstall=lambda mac, name: None)
    mode = ClusterMode(api, hooks, render_interval=0.0, status_interval=0.01)
    task = asyncio.create_task(mode.run())
    try:
        await until(lambda: MAC in mode._baseline, "a round as a standby with the Machine known")
        leading[0] = True
        rounds = mode.rounds
        await until(lambda: mode.rounds > rounds + 2, "status rounds as leader")
        assert not [p for _, p in api.patches if "phase" in p]
        states[MAC] = ("install-ignition", "")  # learnt in this term: written
        await until(lambda: ("w-9", {"phase": "install-ignition"}) in api.patches, "the new phase")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_status_round_writes_onto_the_version_it_read_and_stops_once_deposed():
    """Each write names the version its patch was computed from (a 409 skips that Machine, not the
    round); a leader deposed mid-round writes nothing more (each write may wait out its timeout)."""
    machines = [obj(f"w-{i}", observed=0, reinstall=1, version=str(10 + i)) for i in range(3)]
    api = StandInApi(machines)
    leading = [True]
    conflicts = ["w-0"]

    def patch_status(name, status, version=""):
        api.patches.append((name, status))
        api.versions.append(version)
        if name in conflicts:
            raise Conflict(f"HTTP 409 on PATCH {name}")
        leading[0] = name != "w-1"  # deposed while writing w-1

    api.patch_status = patch_status
    hooks = Hooks(rebuild=lambda: "", refresh=lambda: None, leading=lambda: leading[0],
                  node_state=lambda mac: ("", ""), reinstall=lambda mac, name: None)
    mode = ClusterMode(api, hooks)
    mode.known = {m["metadata"]["name"]: MachineView.of(m) for m in machines}
    await mode._status_round()
    assert [name for name, _ in api.patches] == ["w-0", "w-1"]  # not w-2: no longer leading
    assert api.versions == ["10", "11"]
    assert mode.known["w-0"].observed == 0 and mode.known["w-1"].observed == 1  # the 409 took nothing


def test_a_reported_error_reaches_the_machine_and_its_event_with_control_characters_spelled_out():
    """A failure message is the machine's own text from the LAN: `kubectl get machines -o wide` and
    `kubectl describe` print it, so an ESC sequence or a forged line must not reach them as is."""
    known = {"w-9": MachineView.of(obj("w-9", observed=0))}
    forged = "disk gone\x1b[2J\r\nw-1 Ready\u202e"
    [(name, patch)] = status_patches(known, {MAC: ("failed", forged)}, 10).items()
    assert patch["lastError"] == "disk gone\\x1b[2J\\r\\nw-1 Ready\\u202e"
    assert _note(patch) == ("Failed", patch["lastError"], True)
    known["w-9"] = MachineView.of(obj("w-9", observed=0, phase="failed", error=patch["lastError"]))
    assert status_patches(known, {MAC: ("failed", forged)}, 10) == {}  # written once, not every round


def test_an_event_per_phase_change_a_warning_per_error():
    assert _note({"phase": "install-ignition"}) == ("InstallIgnition", "phase install-ignition", False)
    assert _note({"lastError": "disk not found", "phase": "installing"}) == ("Failed", "disk not found", True)
    assert _note({"observedReinstall": 1}) is None
    assert _note({"observedReinstall": 2, "installWindow": None, "phase": None}) is None  # a reinstall


def test_coalescer_acts_once_per_interval_on_many_marks():
    c = Coalescer(0.5)
    assert c.wait(0.0) is None  # nothing marked
    c.mark()
    c.mark()
    assert c.wait(10.0) == 0.0  # first time: at once
    c.done(10.0)
    assert c.wait(10.1) is None
    c.mark()
    assert abs(c.wait(10.1) - 0.4) < 1e-9
    assert c.wait(11.0) == 0.0


def test_backoff_doubles_up_to_its_cap_and_resets():
    b = Backoff(first=0.5, cap=3.0)
    assert [b.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    b.succeeded()
    assert b.failed() == 0.5


def test_a_machine_whose_bmc_was_set_aside_reports_why_beside_its_install_error(tmp_path):
    """The status loop's lastError: the event log's error, and why the Machine's BMC was not used
    (app/pivot/bmc.py); a Machine without either has none."""
    walked = [("2026-01-02T03:04:05.000Z", "dhcp")]
    logged = {MAC: SimpleNamespace(phase="failed", error="disk not found", history=walked),
              "52:54:00:00:00:2a": SimpleNamespace(phase="installed", error="", history=[])}
    server = SimpleNamespace(events=SimpleNamespace(state=logged.get), store=SimpleNamespace(refresh=lambda: None),
                             elector=None)
    rebuild = Rebuild(None, "prov", tmp_path / "tree", tmp_path, tmp_path)
    rebuild.refused = {MAC: "bmc.passwordFile names a file", "52:54:00:00:00:2a": "bmc.passwordEnv names a variable"}
    state = hooks(server, rebuild, "serve").node_state
    assert state(MAC) == Report("failed", "disk not found; bmc.passwordFile names a file", tuple(walked))
    assert state("52:54:00:00:00:2a") == Report("installed", "bmc.passwordEnv names a variable")
    assert state("52:54:00:00:00:2b") == Report("", "")
    rebuild.refused = {}  # the next render: its Machine now names a Secret
    assert state(MAC) == Report("failed", "disk not found", tuple(walked))


def test_output_must_be_empty_or_cluster_modes_own(tmp_path):
    assert owned(tmp_path / "absent", "ns") is None
    assert owned(tmp_path, "ns") is None  # empty
    (tmp_path / "cluster.yaml").write_text("x")
    assert "did not make" in owned(tmp_path, "ns")
    (tmp_path / MARKER).write_text("other")
    assert "did not make" in owned(tmp_path, "ns")
    (tmp_path / MARKER).write_text("ns")
    assert owned(tmp_path, "ns") is None


class StandInApi:
    """Stands in for MachinesApi (the real list/watch/PATCH/Event calls run against a real API server
    in tests/k8s/test_cluster_mode_real.py): a scripted list, watch events handed over one watch at
    a time, and a record of the writes."""

    def __init__(self, items: list[dict]):
        self.items, self.patches, self.events, self.versions = items, [], [], []
        self.pending: list[list[dict]] = []  # one list of events per watch call
        self.lists = 0
        self.ready = threading.Event()

    def list(self):
        self.lists += 1
        return self.items, "1"

    def watch(self, version, on_event):
        self.ready.wait(5)  # at most once per test: the test set it when it queued the events
        self.ready.clear()
        for event in self.pending.pop(0) if self.pending else []:
            if not on_event(event):
                return
        time.sleep(0.05)  # the server "ends" the watch; the loop starts the next from the last version

    def abort(self):
        self.ready.set()

    def patch_status(self, name, status, version=""):
        self.patches.append((name, status))
        self.versions.append(version)

    def event(self, name, uid, reason, note, warning, instance):
        self.events.append((name, reason, warning))


async def until(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_cluster_mode_renders_on_changes_keeps_going_after_a_bad_render_and_writes_status():
    api = StandInApi([obj("cp-1", observed=0)])
    renders, reinstalled, states = [], [], {}
    fail_next = []

    def rebuild():
        if fail_next:
            fail_next.pop()
            raise RebuildFailed("cluster.yaml: duplicate address")
        renders.append(1)
        return "rendered"

    hooks = Hooks(rebuild=rebuild, refresh=lambda: None, leading=lambda: True,
                  node_state=lambda mac: states.get(mac, ("", "")), reinstall=lambda mac, name: reinstalled.append(name))
    mode = ClusterMode(api, hooks, render_interval=0.0, status_interval=0.01)
    task = asyncio.create_task(mode.run())
    try:
        await until(lambda: len(renders) == 1, "the first list to render")
        fail_next.append(1)
        api.pending.append([{"type": "ADDED", "object": obj("w-9", version="2")}])
        api.ready.set()
        await until(lambda: "w-9" in mode.known and not fail_next, "the refused render")
        assert len(renders) == 1  # refused: nothing switched, and the loop goes on
        api.pending.append([{"type": "MODIFIED", "object": obj("w-9", generation=2, version="3")},
                            {"type": "MODIFIED", "object": obj("w-9", generation=2, phase="x", version="4")}])
        api.ready.set()
        await until(lambda: len(renders) == 2, "the spec change to render")
        assert mode.version == "4"
        states[MAC] = ("installed", "")
        await until(lambda: ("w-9", "Installed", False) in api.events, "the phase Event")
        assert ("cp-1", {"phase": "installed"}) in api.patches
        # spec.reinstall above what was acted on: one reinstall, then observedReinstall follows.
        mode.known["w-9"] = MachineView.of(obj("w-9", generation=3, reinstall=1, observed=0, phase="installed"))
        # Its install starts over on every replica: the Machine's window, phase and timeline go with it.
        await until(lambda: ("w-9", {"observedReinstall": 1, "installWindow": None, "phase": None,
                                     "timeline": None}) in api.patches, "observedReinstall")
        rounds = mode.rounds
        await until(lambda: mode.rounds > rounds + 1, "another status round")
        assert reinstalled == ["w-9"]  # once
        api.pending.append([{"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}])
        lists = api.lists
        api.ready.set()
        await until(lambda: api.lists > lists, "a fresh list after 410 Gone")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_refresh_makes_the_store_look_at_a_switched_tree_at_once(tmp_path):
    """Cluster mode switches the tree and tells the store: no waiting out its recheck period."""
    from app.generations import write_tree
    from app.serve.boot.store import MatchboxStore

    def group(name: str) -> dict:
        return {f"matchbox/groups/{name}.json": (json.dumps({"id": name, "profile": "p", "selector": {
            "mac": MAC if name == "w-9" else "52:54:00:00:00:11"}, "metadata": {"name": name}}).encode(), 0o644)}

    write_tree(tmp_path, group("cp-1"))
    store = MatchboxStore(tmp_path / "matchbox", recheck=3600, clock=lambda: 0.0)  # never due by itself
    assert MAC not in store.known_nodes()
    write_tree(tmp_path, {**group("cp-1"), **group("w-9")})
    assert MAC not in store.known_nodes()  # within the recheck period: the index it has
    store.refresh()
    assert store.known_nodes()[MAC] == "w-9"


def test_serve_from_cluster_refuses_an_appliances_output_and_changes_nothing(tmp_path):
    from typer.testing import CliRunner

    from app.cli import app

    out = tmp_path / "output"
    out.mkdir()
    (out / "cluster.yaml").write_text("kept\n")
    result = CliRunner().invoke(app, ["--output", str(out), "serve", "--from-cluster", "--cluster-namespace", "ns",
                                      "--listen", "127.0.0.1:1", "--assets", str(tmp_path)])
    assert result.exit_code != 0 and "did not make for namespace ns" in result.output, result.output
    assert sorted(p.name for p in out.iterdir()) == ["cluster.yaml"] and (out / "cluster.yaml").read_text() == "kept\n"
    result = CliRunner().invoke(app, ["--output", str(tmp_path / "new"), "serve", "--from-cluster", "--matchbox-data",
                                      str(tmp_path), "--listen", "127.0.0.1:1", "--assets", str(tmp_path)])
    assert result.exit_code != 0 and "does not take --matchbox-data" in result.output, result.output
    # Worker processes would answer from windows nobody writes to the Machines: one process.
    result = CliRunner().invoke(app, ["--output", str(tmp_path / "new"), "serve", "--from-cluster", "--workers", "2",
                                      "--listen", "127.0.0.1:1", "--assets", str(tmp_path)])
    assert result.exit_code != 0 and "--from-cluster runs one HTTP worker" in result.output, result.output
    # --listen's default is read from a cluster.yaml file; in cluster mode there is none to read.
    result = CliRunner().invoke(app, ["--config", str(tmp_path / "absent.yaml"), "--output", str(tmp_path / "new"),
                                      "serve", "--from-cluster", "--assets", str(tmp_path)])
    assert result.exit_code == 1 and "--from-cluster needs --listen" in result.output, result.output
    assert "absent.yaml" not in result.output
    assert not (tmp_path / "new").exists()


def test_the_deployment_runs_cluster_mode_in_a_directory_of_its_volume():
    from app.pivot.workload import OUTPUT_TREE, Workload, deployment

    pod = deployment(Workload("bn", "img", {}, 8080, {}))["spec"]["template"]["spec"]
    container = pod["containers"][0]
    args = container["args"]
    assert "--from-cluster" in args and args[args.index("--cluster-namespace") + 1] == "bn"
    assert args[args.index("--output") + 1] == OUTPUT_TREE
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "output")
    assert OUTPUT_TREE.startswith(mount + "/")  # below the mount point: the tree is switched by rename


@pytest.mark.parametrize("args, says", [
    (["--cluster-namespace", "kube-system"], "a namespace of Kubernetes' own"),
    (["--cluster-namespace", "Not_A_Label"], "a namespace is a DNS label"),
    (["--kubeconfig", "{bad}"], "cannot load"),
])
def test_serve_from_cluster_refuses_bad_input_with_a_clear_error_and_creates_nothing(tmp_path, args, says):
    from typer.testing import CliRunner

    from app.cli import app

    bad = tmp_path / "kubeconfig"
    bad.write_text("not: [yaml")
    args = [a.format(bad=bad) for a in args]
    out = tmp_path / "new"
    result = CliRunner().invoke(app, ["--output", str(out), "serve", "--from-cluster", "--listen", "127.0.0.1:1",
                                      "--assets", str(tmp_path), *args])
    assert result.exit_code == 1 and says in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists()
