"""`init --yes` against the real control plane: generate's tree (the one the control plane was made
from), the real serve (no dnsmasq: --dhcp none --tftp none) inside the control plane's network
namespace, the health gate reaching Ready once the test registers the nodes as kubelets would, the
user's kubeconfig, and nothing left running; and with BMCs (sushy-tools' Redfish emulator, started in
that namespace too), nodes powered on and an installed one pointed at its disk while the gate waits."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.events import Event, append_event
from app.pivot.ownership import claim
from app.wait import kube
from tests.integration.test_power_bmc import SYSTEMS, bmc_config, redfish
from tests.support.assets import standin_assets
from tests.support.bmc import PASSWORD, USER, Emulator, sushy_emulator
from tests.support.gate import NAMES, make_templates
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import free_port, wait_for


def start_init(output: Path, config: Path, server: str, port: int, *extra: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--config", str(config), "--output", str(output), "--templates",
         str(make_templates(output.parent / "templates")), "init", "--yes", "--listen", f"127.0.0.1:{port}",
         "--dhcp", "none", "--tftp", "none", "--assets", str(standin_assets(output.parent / "assets", config)),
         "--ipxe-dir", "/nonexistent", "--server", server, "--poll", "0.2", "--api-timeout", "60",
         "--bind", "address", *extra],  # loopback has no neighbour table
        cwd=REPO, stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def gate_reached_api(output: Path, proc: subprocess.Popen) -> bool:
    events = output / "events.jsonl"
    return proc.poll() is not None or (events.exists() and "api-ready" in events.read_text())


def test_init_yes_serves_waits_writes_kubeconfig_and_leaves_nothing(control_plane, output):
    control_plane.register({n: None for n in NAMES if n != "cp-1"} | {"cp-1": False})
    port = free_port()
    proc = start_init(output, EXAMPLE, control_plane.server, port, "--nodes-timeout", "120")
    try:
        wait_for(lambda: (output / "serve.json").exists() or proc.poll() is not None, what="serve to start")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ipxe?mac=52:54:00:00:00:21") as r:
            assert b"flatcar_production_pxe.vmlinuz" in r.read()  # serving while waiting
        wait_for(lambda: gate_reached_api(output, proc), timeout=60, what="the gate to reach the API")
        control_plane.register({n: True for n in NAMES})  # the kubelets join and report Ready
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    stdout, stderr = proc.communicate()
    assert code == 0, stderr
    assert "Power on your nodes now" in stdout and "all 5 nodes Ready" in stdout
    kubeconfig = output / "kubeconfig"
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    assert not (output / "serve.json").exists() and port_closed(port)
    kinds = [json.loads(line)["kind"] for line in (output / "events.jsonl").read_text().splitlines()]
    assert kinds.index("serve-started") < kinds.index("api-ready") < kinds.index("serve-stopped")
    assert kinds.index("api-ready") < kinds.index("ready")


def test_init_ctrl_c_stops_everything(control_plane, output):
    control_plane.register({"worker-2": None})  # never joins
    port = free_port()
    proc = start_init(output, EXAMPLE, control_plane.server, port)
    try:
        wait_for(lambda: gate_reached_api(output, proc), timeout=60, what="the gate to reach the API")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert code == 130, proc.stderr.read()
    assert not (output / "serve.json").exists() and port_closed(port)
    assert not (output / "kubeconfig").exists()


@pytest.fixture
def rack(control_plane, tmp_path):
    """sushy-tools' emulator in the control plane's network namespace, where init runs."""
    binary = sushy_emulator()
    if binary is None:
        pytest.skip("needs sushy-emulator (pip: sushy-tools, a test dependency)")
    with control_plane.inside():
        emulator = Emulator(tmp_path / "redfish", list(SYSTEMS.values()), binary)
    yield emulator
    emulator.stop()


def test_init_powers_on_through_bmcs_names_a_refusal_and_points_installed_nodes_at_disk(
        control_plane, rack, output, tmp_path):
    """cp-1 through its BMC, worker-1's BMC refuses the password (said, init goes on), the others
    are asked for; cp-1 reports installed while init waits and gets its disk override; the real API
    then sees every node Ready."""
    config = bmc_config(rack.url, tmp_path, wrong_password_for="cli-2")
    control_plane.register({n: False for n in NAMES})  # registered, not Ready yet
    proc = start_init(output, config, control_plane.server, free_port(), "--nodes-timeout", "120")
    lines = []
    try:
        wait_for(lambda: (output / "serve.json").exists() or proc.poll() is not None, what="serve to start")
        append_event(output, Event("installed", mac="52:54:00:00:00:11", node="cp-1", source="node"))
        for line in proc.stdout:  # nodes stay NotReady, so init runs until it has said this
            lines.append(line.rstrip())
            if line.startswith("cp-1 installed"):
                break
        control_plane.register({n: True for n in NAMES})  # now the cluster becomes healthy
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    lines += proc.stdout.read().splitlines()
    out = "\n".join(lines)
    assert code == 0, out + proc.stderr.read()
    assert "cp-1 (redfish): network boot once, powering on" in out
    assert f"power on failed: worker-1: BMC {rack.url} refused user '{USER}' (401)" in out
    assert "Power on your nodes now (cp-2, cp-3, worker-2)" in out
    assert "cp-1 installed; next boots from its disk: boot override now hdd (continuous)" in out
    assert "all 5 nodes Ready" in out
    assert "not-the-password" not in out and PASSWORD not in out
    assert PASSWORD not in "".join(p.read_text(errors="replace") for p in output.rglob("*") if p.is_file())
    assert redfish(rack.url, system="cli-1").status().boot == "hdd (continuous)"


def healthy_init(control_plane, output: Path, *extra: str) -> tuple[int, str, str]:
    """init with every node already Ready, to its end: (exit code, stdout, stderr)."""
    control_plane.register({n: True for n in NAMES})
    proc = start_init(output, EXAMPLE, control_plane.server, free_port(), "--nodes-timeout", "120", *extra)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    return proc.returncode, stdout, stderr


def test_init_pivot_moves_provisioning_into_the_cluster_it_made(control_plane, output):
    code, stdout, stderr = healthy_init(control_plane, output, "--pivot", "--pivot-namespace", "from-init",
                                        "--pivot-image", "registry.example/bootstrap-node:test")
    assert code == 0, stdout + stderr
    assert stdout.index("all 5 nodes Ready") < stdout.index("in force before the Deployment") \
        < stdout.index("applied: Deployment from-init/bootstrap-node")
    assert "pivoted: 5 machines in namespace from-init" in stdout
    image = control_plane.kubectl("get", "deployment", "-n", "from-init", "bootstrap-node",
                                  "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert image == "registry.example/bootstrap-node:test"
    assert len(control_plane.kubectl("get", "machines", "-n", "from-init", "-o", "name").stdout.split()) == 5


def test_init_pivot_failing_says_the_cluster_is_fine_and_how_to_pivot_again(control_plane, output):
    """A quota in the namespace refuses pivot's Deployment: the cluster is still healthy, init says so
    with exit 7 and the pivot command to run, and the Deployment (applied last) is not there."""
    # A namespace pivot made (created and marked by pivot's own claim: pivot refuses any other), since
    # given a quota.
    with control_plane.inside():
        admin = kube.api_client(control_plane.admin_conf, control_plane.server)
        assert claim(admin, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "refused"}},
                     (output / "credentials" / "ca.key").read_bytes()) is None
    control_plane.kubectl("create", "quota", "no-deployments", "-n", "refused", "--hard=count/deployments.apps=0")
    code, stdout, stderr = healthy_init(control_plane, output, "--pivot", "--pivot-namespace", "refused")
    assert code == 7, stdout + stderr
    assert "all 5 nodes Ready" in stdout and "exceeded quota: no-deployments" in stderr
    assert "the cluster is up and healthy" in stderr and "Traceback" not in stderr
    assert (output / "kubeconfig").stat().st_mode & 0o777 == 0o600
    assert control_plane.kubectl("get", "deployments", "-n", "refused", "-o", "name").stdout == ""
    # The command it prints is the whole way on: once the quota is gone, it pivots.
    again = shlex.split(stderr.split("Nothing needs to be done again but the pivot: ", 1)[1].splitlines()[0])
    assert again[0] == "bootstrap-node" and ["--kubeconfig", str(output / "kubeconfig")] == \
        again[again.index("pivot") + 1:again.index("pivot") + 3]
    control_plane.kubectl("delete", "quota", "no-deployments", "-n", "refused")
    result = CliRunner().invoke(app, again[1:])
    assert result.exit_code == 0, result.output
    assert "pivoted: 5 machines in namespace refused" in result.output
