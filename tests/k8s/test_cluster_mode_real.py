"""`serve --from-cluster` against a real kube-apiserver: the generated example cluster is pivoted into
it, serve renders its tree from the Machines (no output directory of the appliance involved) and
follows them with a real watch.

serve runs as a process in the control plane's network namespace with the admin kubeconfig standing
in for the pod's ServiceAccount token (no kubelet runs here to start the Deployment's pod); the
ServiceAccount's rights for exactly these calls are checked by test_pivot_real.py's RBAC tests.
Requests come from 127.0.0.1 with `--bind address`, as the integration tests make them."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app import pki
from app.cli import app
from app.cluster_record import record_cluster
from app.events import PHASES
from app.generations import CURRENT, GENERATIONS
from tests.support.assets import standin_assets
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import free_port, stop, wait_for
from tests.support.secrets import cluster_secrets, leaked
from tests.support.serve import bearer, credential_in

NS = "cluster-mode"
NEW = {"name": "worker-9", "mac": "52:54:00:00:00:29", "ip": "10.0.0.29"}


def machine(name: str = NEW["name"], mac: str = NEW["mac"], ip: str = NEW["ip"], reinstall: int = 0) -> str:
    return yaml.safe_dump({"apiVersion": "bootstrap-node.io/v1alpha1", "kind": "Machine",
                           "metadata": {"name": name, "namespace": NS},
                           "spec": {"mac": mac, "role": "worker", "addresses": [ip], "reinstall": reinstall,
                                    "installDisk": "/dev/disk/by-id/wwn-0x5000c500a0b1c229"}})


@contextlib.contextmanager
def from_cluster(control_plane, tmp: Path, *args: str, env: dict | None = None):
    """`serve --from-cluster ARGS` on an empty --output, as a process in the control plane's network
    namespace, once it answers; yields (url, output, log path, the process) and stops it afterwards."""
    out, log = tmp / "tree", tmp / "serve.log"
    port = free_port()
    with control_plane.inside(), log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--config", str(tmp / "absent.yaml"), "--output", str(out), "serve",
             "--from-cluster", *args, "--listen", f"127.0.0.1:{port}", "--dhcp", "none", "--tftp", "none",
             "--bind", "address", "--assets", str(standin_assets(tmp / "assets"))], cwd=REPO, env=env, stdout=sink,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        with control_plane.inside():
            try:
                wait_for(lambda: proc.poll() is not None or get(url, "/")[0] == 200, timeout=120,
                         what=f"serve --from-cluster {' '.join(args)} to answer")
            finally:
                print(log.read_text()[-5000:])  # shown when something here fails
        assert proc.poll() is None, log.read_text()[-3000:]
        yield url, out, log, proc
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def serving(control_plane, generated_k8s, tmp_path_factory):
    """Pivoted into NS, then `serve --from-cluster` on an empty --output. Yields (url, output, log path,
    the process)."""
    tmp = tmp_path_factory.mktemp("cluster-mode")
    with control_plane.inside():
        pivot_into(control_plane, generated_k8s, tmp, NS)
    with from_cluster(control_plane, tmp, "--kubeconfig", str(control_plane.admin_conf), "--cluster-namespace",
                      NS) as running:
        yield running


def pivot_into(control_plane, generated: Path, tmp: Path, namespace: str, templates: Path | None = None,
               recorded: bool = False) -> None:
    """`pivot` the example cluster's tree into `namespace`, then remove the tree: nothing of the
    appliance's output is left to read. Call it inside the control plane's network. `templates`: the
    overrides in use; `recorded`: the tree as `wait` leaves it, the cluster record saying it exists."""
    source = tmp / "appliance"
    shutil.copytree(generated, source, symlinks=True)
    if recorded:
        ca = (source / "credentials" / "ca.crt").read_bytes()
        record_cluster(source, pki.ca_pin(ca), control_plane.server, dt.datetime.now(dt.UTC))
    result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(source), "--templates",
                                      str(templates or "/nonexistent"), "pivot", "--kubeconfig",
                                      str(control_plane.admin_conf),
                                      "--image", "registry.example/bootstrap-node:test", "--namespace", namespace,
                                      "--timeout", "60"])
    assert result.exit_code == 0, result.output
    shutil.rmtree(source)


def request(url: str, path: str, method: str = "GET", body: dict | None = None, headers: dict | None = None,
            source: str = "127.0.0.1") -> tuple[int, bytes]:
    """One request from `source` (each machine its own loopback address: --bind address ties a
    window to the address that PXE-booted). (0, b"") when nothing answers."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode() if body is not None else None
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=data, headers={**(headers or {}),
                                                       **({"Content-Type": "application/json"} if data else {})})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):  # HTTPException: a self-connect to a port nobody listens on yet
        return 0, b""
    finally:
        conn.close()


def source_of(mac: str) -> str:
    return f"127.0.0.{int(mac.rsplit(':', 1)[1], 16)}"


def get(url: str, path: str, mac: str | None = None) -> tuple[int, bytes]:
    return request(url, path, source=source_of(mac) if mac else "127.0.0.1")


def kubectl(control_plane, *args: str, stdin: str | None = None, check: bool = True):
    return control_plane.kubectl("-n", NS, *args, stdin=stdin, check=check)


def installs(url: str, mac: str) -> bool:
    """Its PXE boot is answered with the installer (a kernel line), not a wait-and-retry script."""
    status, body = get(url, f"/ipxe?mac={mac}", mac)
    return status == 200 and b"kernel " in body


def current(out: Path) -> str:
    return os.readlink(out / GENERATIONS / CURRENT)


def machine_field(control_plane, name: str, path: str) -> str:
    return kubectl(control_plane, "get", "machine", name, "-o", f"jsonpath={{{path}}}").stdout


def timeline_of(control_plane, name: str) -> list[dict]:
    """status.timeline as the API server stored it ([] when it has none)."""
    stored = json.loads(kubectl(control_plane, "get", "machine", name, "-o", "json").stdout)
    return (stored.get("status") or {}).get("timeline") or []


def test_the_tree_is_rendered_from_the_cluster(serving):
    _, out, _, _ = serving
    groups = {p.name for p in (out / "matchbox" / "groups").iterdir()}
    assert {"cp-1.json", "worker-2.json"} <= groups, groups
    assert (out / "credentials" / "ca.key").stat().st_mode & 0o777 == 0o600


def test_a_machine_applied_with_kubectl_is_served_once_and_reports_its_phase(serving, control_plane):
    url, out, _, _ = serving
    assert not installs(url, NEW["mac"])
    kubectl(control_plane, "apply", "-f", "-", stdin=machine())
    wait_for(lambda: installs(url, NEW["mac"]), timeout=30, what="the new Machine's PXE boot to be answered")
    mac, me = NEW["mac"], source_of(NEW["mac"])
    status, install = get(url, f"/ignition?mac={mac}", mac)
    assert status == 200, install
    credential = credential_in(install)
    assert get(url, f"/ignition?mac={mac}", mac)[0] == 403  # once
    # Another address asking for it, or for a machine that did not PXE-boot, gets nothing.
    for source, asked in (("127.0.0.99", mac), (source_of("52:54:00:00:00:21"), "52:54:00:00:00:21")):
        status, other = request(url, f"/ignition?mac={asked}", source=source)
        assert status == 403 and not leaked(other, cluster_secrets(out)), (source, asked, other)
    status, final = request(url, f"/ignition?mac={mac}&os=installed", headers=bearer(credential), source=me)
    assert status == 200 and "bootstrap-token" in leaked(final, cluster_secrets(out))
    assert "ca.key" not in leaked(final, cluster_secrets(out))  # a worker: the least secret
    status, _ = request(url, "/events", "POST", {"mac": mac, "phase": "installed"}, bearer(credential), source=me)
    assert status == 200
    wait_for(lambda: machine_field(control_plane, NEW["name"], ".status.phase") == "installed", timeout=30,
             what="the Machine's status.phase to say installed")
    printed = kubectl(control_plane, "get", "machines").stdout
    assert any(line.split()[:4] == [NEW["name"], "worker", NEW["mac"], "installed"] for line in printed.splitlines()), \
        printed
    # The timeline went with the phase: each phase it walked once, in the order of the path, in UTC.
    steps = timeline_of(control_plane, NEW["name"])
    phases = [step["phase"] for step in steps]
    assert phases[:1] == ["ipxe"] and phases[-1:] == ["installed"] and "install-ignition" in phases, steps
    assert [PHASES.index(p) for p in phases] == sorted({PHASES.index(p) for p in phases}), steps
    times = [dt.datetime.fromisoformat(step["time"]) for step in steps]
    assert all(t.utcoffset() == dt.timedelta(0) for t in times) and times == sorted(times), steps
    template = "jsonpath={range .items[*]}{.regarding.name}/{.reason}/{.reportingController} {end}"
    try:
        wait_for(lambda: f"{NEW['name']}/Installed/bootstrap-node.io/bootstrap-node" in kubectl(
            control_plane, "get", "events.events.k8s.io", "-o", template).stdout.split(), timeout=30,
            what="an Event for the phase change")
    except BaseException:
        print(serving[2].read_text()[-5000:])
        raise


def test_a_reinstall_bump_lets_the_machine_install_again(serving, control_plane):
    url, _, _, _ = serving
    wait_for(lambda: machine_field(control_plane, NEW["name"], ".status.observedReinstall") == "0", timeout=30,
             what="the leader to record the reinstall it acted on")
    assert not installs(url, NEW["mac"])  # installed: told to boot from its disk
    kubectl(control_plane, "patch", "machine", NEW["name"], "--type", "merge", "-p", '{"spec":{"reinstall":1}}')
    wait_for(lambda: machine_field(control_plane, NEW["name"], ".status.observedReinstall") == "1", timeout=30,
             what="observedReinstall to follow spec.reinstall")
    assert timeline_of(control_plane, NEW["name"]) == []  # gone with the phase: the install starts over
    wait_for(lambda: installs(url, NEW["mac"]), timeout=30, what="the installer to be offered again")
    # A new timeline, begun by this PXE boot alone.
    wait_for(lambda: [s["phase"] for s in timeline_of(control_plane, NEW["name"])] == ["ipxe"], timeout=30,
             what="a new timeline from the new PXE boot")


def test_a_bad_machine_is_refused_and_the_last_good_tree_is_served(serving, control_plane):
    url, out, log, _ = serving
    before = current(out)
    refused = kubectl(control_plane, "apply", "-f", "-", stdin=machine(mac="zz:54:00:00:00:29"), check=False)
    assert refused.returncode != 0 and "spec.mac" in refused.stderr, refused.stderr
    # Past the schema, but `validate` refuses it: cp-1's address twice. Logged; the tree stays.
    kubectl(control_plane, "apply", "-f", "-", stdin=machine("worker-dup", "52:54:00:00:00:2a", "10.0.0.11"))
    wait_for(lambda: "still serving the last good tree" in log.read_text(), timeout=30, what="the refusal in the log")
    assert current(out) == before
    assert installs(url, NEW["mac"]) and not installs(url, "52:54:00:00:00:2a")
    kubectl(control_plane, "delete", "machine", "worker-dup")


def test_deleting_a_machine_stops_serving_it(serving, control_plane):
    url, out, _, _ = serving
    kubectl(control_plane, "delete", "machine", NEW["name"])
    wait_for(lambda: not (out / "matchbox" / "groups" / f"{NEW['name']}.json").exists(), timeout=30,
             what="its group to leave the tree")
    wait_for(lambda: not installs(url, NEW["mac"]), timeout=10, what="its PXE boot to go unanswered")
    assert installs(url, "52:54:00:00:00:22")  # the others are still served


def test_a_bmc_password_from_the_pods_own_files_is_not_read_and_the_machine_says_why(serving, control_plane):
    """A Machine whose bmc.passwordFile names the pod's bootstrap token (its author's BMC address would
    receive it at the next power-on): rendered and served without its BMC, the others still served,
    and the refusal in its status.lastError, in a Warning Event and in the log."""
    url, out, log, _ = serving
    name, mac = "worker-bmc", "52:54:00:00:00:2b"
    body = yaml.safe_load(machine(name, mac, "10.0.0.43"))
    body["spec"].update(power="redfish", bmc={"address": "https://10.0.1.43", "username": "root",
                                              "passwordFile": str(out / "credentials" / "bootstrap-token")})
    kubectl(control_plane, "apply", "-f", "-", stdin=yaml.safe_dump(body))
    try:
        wait_for(lambda: "bmc.passwordFile names a file where the appliance runs" in machine_field(
            control_plane, name, ".status.lastError"), timeout=30, what="the refusal in the Machine's lastError")
        assert "bmc.passwordSecret" in machine_field(control_plane, name, ".status.lastError")
        assert installs(url, mac) and installs(url, "52:54:00:00:00:22")
        node = next(n for n in yaml.safe_load((out / "cluster.yaml").read_text())["nodes"] if n["name"] == name)
        assert "bmc" not in node and node["power"] == "manual"
        assert f"cluster mode: Machine {name}: bmc.passwordFile names a file" in log.read_text()
        template = "jsonpath={range .items[*]}{.regarding.name}/{.reason}/{.type} {end}"
        wait_for(lambda: f"{name}/Failed/Warning" in kubectl(
            control_plane, "get", "events.events.k8s.io", "-o", template).stdout.split(), timeout=30,
            what="a Warning Event on the Machine")
    finally:
        kubectl(control_plane, "delete", "machine", name, "--ignore-not-found")


def test_serve_stops_cleanly_with_its_watch_open(serving):
    """Last: SIGTERM ends the open watch (its thread is not left to run out the watch's timeout)."""
    _, _, log, proc = serving
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    print(f"serve --from-cluster stopped {time.monotonic() - began:.2f} s after SIGTERM, load {os.getloadavg()[0]:.1f}")
