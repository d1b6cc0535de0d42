"""A move keeps what each machine has been through, on the real API server (app/pivot/history.py).

`pivot` of an output whose event log says cp-1 is installed and Ready starts Machine cp-1 with that
status, which the server's schema accepts and the cluster-mode leader reads as installed; it never
overwrites a status the cluster wrote since. `unpivot` writes the Machines' status back as an event
log, and the appliance's own boot server, run on the exported tree, tells cp-1 to boot from its disk
while a machine that never installed still gets its installer. Without this, every installed machine
that PXE-boots after a move would be installed again. The cluster-mode server itself (`serve
--from-cluster`, as a process) answers cp-1 the same way."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.cluster import load_cluster
from app.events import Event, EventLog
from app.serve.cluster import windows
from app.wait import kube
from tests.k8s.test_cluster_mode_real import from_cluster, get, installs
from tests.k8s.test_pivot_real import admin, cli, pivot, said, templates  # noqa: F401
from tests.support.paths import EXAMPLE
from tests.support.serve import running
from tests.unit.test_pivot_state import as_wait_leaves_it

NS = "carried"  # this module's own namespace: the tier's other modules share the control plane
PATH = ["dhcp", "tftp", "ipxe", "kernel", "install-ignition", "installing", "installed", "final-ignition",
        "kubeadm", "joined", "ready"]


def macs() -> dict[str, str]:
    return {n.name: n.mac for n in load_cluster(EXAMPLE)[0].nodes}


@pytest.fixture(scope="module")
def served_output(generated_k8s, tmp_path_factory) -> Path:
    """The generated tree as `wait` leaves it, with an event log: cp-1 installed and Ready, worker-1
    failed while installing, the rest never seen."""
    out = tmp_path_factory.mktemp("carried") / "output"
    shutil.copytree(generated_k8s, out, symlinks=True)
    as_wait_leaves_it(out)
    mac = macs()
    log = EventLog(out, {m: n for n, m in mac.items()})
    log.open()
    for i, phase in enumerate(PATH):
        log.record(Event(phase, mac=mac["cp-1"], source="node", ts=f"2026-12-06T09:{i:02d}:00.000Z"))
    log.record(Event("installing", mac=mac["worker-1"], source="node"))
    log.record(Event("failed", mac=mac["worker-1"], source="node", message="no disk\x1b[31m"))
    log.close()
    return out


@pytest.fixture(scope="module")
def carried(control_plane, served_output, templates):  # noqa: F811
    with control_plane.inside():  # module fixtures run before the autouse one that enters it for tests
        result = pivot(control_plane, served_output, templates, "--namespace", NS)
    assert result.exit_code == 0, said(result)
    return result


def stored(admin, name: str) -> dict:  # noqa: F811
    return kube.get(admin, f"/apis/bootstrap-node.io/v1alpha1/namespaces/{NS}/machines/{name}")


def test_pivot_starts_each_machine_with_its_nodes_status(admin, carried):  # noqa: F811
    cp = stored(admin, "cp-1")["status"]
    assert cp["phase"] == "ready" and cp["installWindow"] == {"installed": True}
    assert [s["phase"] for s in cp["timeline"]] == PATH
    worker = stored(admin, "worker-1")["status"]
    assert worker["phase"] == "installing" and "\x1b" not in worker["lastError"]
    assert "status" not in stored(admin, "worker-2")
    assert f"status from the event log: Machine {NS}/cp-1: ready" in carried.output
    # What the cluster-mode leader makes of the stored object (its policy's input):
    for name, installed in (("cp-1", True), ("worker-1", False)):
        machine = stored(admin, name)
        assert windows.decode(name, machine["metadata"]["resourceVersion"], machine["status"],
                              3600).installed is installed


def test_a_second_pivot_leaves_what_the_cluster_wrote_since(control_plane, admin, carried, served_output,  # noqa: F811
                                                            templates):  # noqa: F811
    """A reinstall in the cluster cleared cp-1's phase and the leader wrote `installing`: the old
    output's `ready` must not come back over it."""
    control_plane.kubectl("patch", "machine", "cp-1", "-n", NS, "--subresource=status", "--type=merge",
                          "-p", '{"status": {"phase": "installing", "timeline": null, "installWindow": null}}')
    result = pivot(control_plane, served_output, templates, "--namespace", NS)
    assert result.exit_code == 0, said(result)
    status = stored(admin, "cp-1")["status"]
    assert status["phase"] == "installing" and "timeline" not in status and "installWindow" not in status
    assert "status from the event log: Machine" not in result.output  # every Machine has a status, or none to give
    control_plane.kubectl("patch", "machine", "cp-1", "-n", NS, "--subresource=status", "--type=merge",
                          "-p", '{"status": {"phase": "ready", "installWindow": {"installed": true}}}')


def test_the_cluster_mode_leader_tells_an_installed_machine_to_boot_from_its_disk(control_plane, carried, tmp_path):
    mac = macs()
    with from_cluster(control_plane, tmp_path, "--kubeconfig", str(control_plane.admin_conf), "--cluster-namespace",
                      NS) as (url, _, _, _):
        status, body = get(url, f"/ipxe?mac={mac['cp-1']}", mac["cp-1"])
        assert status == 200 and body.decode().splitlines()[-1] == "exit", body
        assert installs(url, mac["worker-2"])  # never installed: its installer, as before the move


async def test_unpivot_gives_the_appliance_an_event_log_that_keeps_installed_machines_on_their_disks(
        control_plane, admin, carried, tmp_path):  # noqa: F811
    back = tmp_path / "back"
    result = cli("--output", str(back), "unpivot", "--kubeconfig", str(control_plane.admin_conf), "--namespace", NS)
    assert result.exit_code == 0, said(result)
    assert (back / "events.jsonl").is_file()
    again = cli("--config", str(back / "cluster.yaml"), "--output", str(back), "--templates", str(back / "templates"),
                "generate", "--assets", "/nonexistent", "--ipxe-dir", "/nonexistent")
    assert again.exit_code == 0, said(again)
    mac = macs()
    async with running(back / "matchbox", back) as (http, _):
        async with http.get(f"/ipxe?mac={mac['cp-1']}") as r:
            text = await r.text()
            assert r.status == 200 and text.splitlines()[-1] == "exit" and "cp-1 is installed" in text
        async with http.get(f"/ipxe?mac={mac['worker-2']}") as r:
            text = await r.text()
            assert r.status == 200 and "kernel " in text and text.splitlines()[-1] != "exit"
