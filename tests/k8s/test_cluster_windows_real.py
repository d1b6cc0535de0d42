"""Install windows across a takeover, against the real API server (docs/high-availability.md, "Install
windows across a takeover").

Two `serve --from-cluster --leader-elect` replicas, each with its own --output (two pods' emptyDirs:
no event log is shared), elect a leader through a real Lease. A machine (HTTP requests from its own
loopback address, as its firmware and installer make them) PXE-boots and takes its install config from
the leader; the leader is killed with SIGKILL; the standby takes over within the stated bound and
finishes the install from what the Machine's status holds, refusing a replay and a wrong credential.
The processes use the admin kubeconfig in place of the pod's token (no kubelet runs here), as in
test_cluster_mode_real.py, whose request helpers these are.

Then the core of "served once" on the real server: two boot services deciding from the same view of
one Machine, both about to serve its install config; the status PATCH's resourceVersion precondition
lets one of them serve.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from app.pivot.crds import crds
from app.serve.cluster.cluster_mode import ClusterMode, Hooks
from app.serve.cluster.lease_api import connect
from app.serve.cluster.machine_watch import MachineView
from app.serve.cluster.machines_api import Conflict, MachinesApi
from tests.k8s.test_cluster_mode_real import pivot_into, request, source_of
from tests.support.assets import standin_assets
from tests.support.control_plane import _setns
from tests.support.paths import REPO
from tests.support.processes import free_port, stop, wait_for
from tests.support.replicas import MAC as RACE_MAC
from tests.support.replicas import ignition, ipxe, replica
from tests.support.secrets import cluster_secrets, leaked
from tests.support.serve import bearer, credential_in

NS, RACE_NS = "cluster-windows", "window-race"
NODE, NODE_MAC = "worker-1", "52:54:00:00:00:21"
LEASE, RENEW, RETRY = 4, 3.0, 0.5
LATENCY = 1.5  # what API round trips and a busy 2-core machine may add to a bound (seconds)
TAKEOVER = LEASE + 2 * RETRY + LATENCY  # docs/high-availability.md: from the last renewal, so from the kill


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def replicas(control_plane, generated_k8s, tmp_path_factory):
    """Pivoted into NS, then two cluster-mode replicas. Yields ({name: url}, {name: process}, {name: tree},
    {name: log})."""
    tmp = tmp_path_factory.mktemp("cluster-windows")
    urls, procs, trees, logs = {}, {}, {}, {}
    with control_plane.inside():
        pivot_into(control_plane, generated_k8s, tmp, NS)
        assets = standin_assets(tmp / "assets")
        for name in ("r1", "r2"):
            port = free_port()
            urls[name], trees[name], logs[name] = f"http://127.0.0.1:{port}", tmp / name / "tree", tmp / f"{name}.log"
            trees[name].parent.mkdir()
            with logs[name].open("wb") as sink:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "app", "--config", str(tmp / "absent.yaml"), "--output", str(trees[name]),
                     "serve", "--from-cluster", "--kubeconfig", str(control_plane.admin_conf), "--cluster-namespace",
                     NS, "--listen", f"127.0.0.1:{port}", "--dhcp", "none", "--tftp", "none", "--bind", "address",
                     "--assets", str(assets), "--leader-elect", "--identity", name, "--lease-namespace", NS,
                     "--lease-name", "serve-windows", "--lease-duration", str(LEASE), "--renew-deadline", str(RENEW),
                     "--retry-period", str(RETRY)], cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    try:
        with control_plane.inside():
            try:
                wait_for(lambda: any(p.poll() is not None for p in procs.values()) or leader(urls), timeout=180,
                         what="one of the replicas to lead")
            finally:
                for name, log in logs.items():
                    print(name, log.read_text()[-3000:])  # shown when something here fails
        assert all(p.poll() is None for p in procs.values())
        yield urls, procs, trees, logs
    finally:
        for proc in procs.values():
            stop(proc)


def health(url: str) -> str:
    status, body = request(url, "/healthz")
    return body.decode().strip() if status == 200 else ""


def leader(urls: dict[str, str]) -> str:
    return next((name for name, url in urls.items() if health(url) == "leader"), "")


def status_of(control_plane, name: str, namespace: str = NS) -> dict:
    run = control_plane.kubectl("-n", namespace, "get", "machine", name, "-o", "yaml")
    return yaml.safe_load(run.stdout).get("status") or {}


def window_of(control_plane, name: str = NODE) -> dict:
    return status_of(control_plane, name).get("installWindow") or {}


def test_a_machine_mid_install_finishes_with_the_new_leader(replicas, control_plane):
    urls, procs, trees, logs = replicas
    first = leader(urls)
    second = next(name for name in urls if name != first)
    me = source_of(NODE_MAC)
    # Until the leader's watch has listed the Machines it opens no window (it could not write one): 503.
    wait_for(lambda: b"kernel " in request(urls[first], f"/ipxe?mac={NODE_MAC}", source=me)[1], timeout=30,
             what="the leader to open the machine's window")
    status, install = request(urls[first], f"/ignition?mac={NODE_MAC}", source=me)
    assert status == 200, install
    credential = credential_in(install)
    # Written before it was served: the Machine holds the window, its credential's hash, no credential.
    window = window_of(control_plane)
    assert window["address"] == me and window["installServed"] is True, window
    assert window["installCredentialHash"] == sha256(credential)
    assert credential not in yaml.safe_dump(status_of(control_plane, NODE))

    killed = time.monotonic()
    procs[first].kill()
    procs[first].wait(timeout=30)
    wait_for(lambda: health(urls[second]) == "leader", timeout=TAKEOVER + 30, interval=0.1,
             what="the standby to take over")
    took = time.monotonic() - killed
    print(f"cluster mode takeover after SIGKILL: {took:.2f} s (lease {LEASE} s, retry {RETRY} s), "
          f"load {os.getloadavg()[0]:.1f}")
    assert took <= TAKEOVER, took
    new = urls[second]
    # Its own log never saw this machine: what it knows of the install is what the Machine holds.
    assert NODE_MAC not in (trees[second] / "events.jsonl").read_text()
    # Attacks on the new leader: the install config again (a replay from the machine's own address), the
    # final config and a callback with a wrong credential, a PXE boot to open a fresh window.
    status, again = request(new, f"/ignition?mac={NODE_MAC}", source=me)
    assert status == 403 and not leaked(again, cluster_secrets(trees[second])), again
    status, guessed = request(new, f"/ignition?mac={NODE_MAC}&os=installed", headers=bearer("guess"), source=me)
    assert status == 403 and not leaked(guessed, cluster_secrets(trees[second])), guessed
    status, _ = request(new, "/events", "POST", {"mac": NODE_MAC, "phase": "installed"}, bearer("guess"), source=me)
    assert status == 403
    status, script = request(new, f"/ipxe?mac={NODE_MAC}", source=me)
    assert status == 200 and b"kernel " not in script  # held: its install is under way
    # The machine goes on: its final config with the install's credential, then its reports.
    status, final = request(new, f"/ignition?mac={NODE_MAC}&os=installed", headers=bearer(credential), source=me)
    assert status == 200 and "bootstrap-token" in leaked(final, cluster_secrets(trees[second])), final[:300]
    assert window_of(control_plane)["finalServed"] is True
    for phase in ("installing", "installed"):
        status, body = request(new, "/events", "POST", {"mac": NODE_MAC, "phase": phase}, bearer(credential),
                               source=me)
        assert status == 200, (phase, body)
    try:
        wait_for(lambda: status_of(control_plane, NODE).get("phase") == "installed", timeout=30,
                 what="the Machine's status.phase to say installed")
    except BaseException:
        print(logs[second].read_text()[-5000:])
        raise
    window = window_of(control_plane)
    assert window["installed"] is True and window["callbackCredentialHash"] == sha256(credential_in(final))
    assert "opened" not in window  # closed: only the callback credential is left of it
    assert b"kernel " not in request(new, f"/ipxe?mac={NODE_MAC}", source=me)[1]  # installed: local boot


@pytest.fixture
def race_machine(control_plane):
    """Machine cp-1 (tests/support/replicas.py's) in a namespace of its own, which no serve watches. The
    CRDs are applied as `pivot` applies them (server-side, forced, its field manager): this test needs
    no pivot before it."""
    control_plane.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "bootstrap-node",
                          "-f", "-", stdin=yaml.safe_dump_all(crds()))
    control_plane.kubectl("wait", "--for", "condition=established", "--timeout", "60s",
                          *(f"crd/{crd['metadata']['name']}" for crd in crds()))
    control_plane.kubectl("create", "namespace", RACE_NS, check=False)
    control_plane.kubectl("-n", RACE_NS, "delete", "machine", "cp-1", "--ignore-not-found")
    control_plane.kubectl("-n", RACE_NS, "apply", "-f", "-", stdin=yaml.safe_dump({
        "apiVersion": "bootstrap-node.io/v1alpha1", "kind": "Machine", "metadata": {"name": "cp-1"},
        "spec": {"mac": RACE_MAC, "role": "controller", "addresses": ["10.0.0.41"],
                 "installDisk": "/dev/disk/by-id/wwn-0x5000c500a0b1c241"}}))
    return MachinesApi(connect(control_plane.admin_conf), RACE_NS)


def in_the_cluster_network(control_plane) -> ThreadPoolExecutor:
    """Threads that make their API calls from the control plane's network namespace (as the test's)."""
    def enter() -> None:
        fd = os.open(f"/run/netns/{control_plane.netns.name}", os.O_RDONLY)
        try:
            _setns(fd)
        finally:
            os.close(fd)
    return ThreadPoolExecutor(4, initializer=enter)


def test_a_write_from_an_old_view_is_refused_by_the_server(race_machine):
    api = race_machine
    version = api.get("cp-1")["metadata"]["resourceVersion"]
    api.patch_status("cp-1", {"installWindow": {"address": "10.0.0.50"}}, version)
    with pytest.raises(Conflict):
        api.patch_status("cp-1", {"installWindow": {"address": "10.0.0.66"}}, version)
    assert api.get("cp-1")["status"]["installWindow"]["address"] == "10.0.0.50"


def test_two_replicas_deciding_from_the_same_view_serve_the_install_config_once(race_machine, control_plane,
                                                                                tmp_path):
    api = race_machine

    async def race():
        asyncio.get_running_loop().set_default_executor(in_the_cluster_network(control_plane))
        first = replica(tmp_path, "a", api)
        assert (await ipxe(first)).status == 200  # the window, opened through one of them
        second = replica(tmp_path, "b", api)  # both now see it open and unused
        return await asyncio.gather(ignition(first), ignition(second))

    replies = asyncio.run(race())
    assert sorted(r.status for r in replies) == [200, 403], replies
    [served] = [r for r in replies if r.status == 200]
    window = status_of(control_plane, "cp-1", RACE_NS)["installWindow"]
    assert window["installServed"] is True and window["installCredentialHash"] == sha256(credential_in(served.body))


def test_a_deposed_leaders_late_reinstall_write_does_not_reopen_a_window_in_use(race_machine, control_plane,
                                                                                 tmp_path):
    """The old leader computed a due reinstall's patch (clear the window and phase) from its view; the
    patch reaches the server only after the next leader acted on that reinstall and served the install
    config. Written, it would clear the served window, and a replay would get the config a second time."""
    api = race_machine
    control_plane.kubectl("-n", RACE_NS, "patch", "machine", "cp-1", "--type", "merge", "-p",
                          '{"spec": {"reinstall": 1}}')
    api.patch_status("cp-1", {"observedReinstall": 0})
    stale = MachineView.of(api.get("cp-1"))  # the old leader's view: reinstall 1 due
    api.patch_status("cp-1", {"observedReinstall": 1, "installWindow": None, "phase": None})  # the new leader's

    async def late_round_then_replay():
        asyncio.get_running_loop().set_default_executor(in_the_cluster_network(control_plane))
        new = replica(tmp_path, "new", api)
        assert (await ipxe(new)).status == 200
        assert (await ignition(new)).status == 200
        old = ClusterMode(api, Hooks(rebuild=lambda: "", refresh=lambda: None, leading=lambda: True,
                                     node_state=lambda mac: ("", ""), reinstall=lambda mac, name: None))
        old.known = {"cp-1": stale}
        await old._status_round()
        replay = replica(tmp_path, "replay", api)  # a takeover's fresh view, the machine's MAC booting again
        await ipxe(replay)
        return await ignition(replay)

    assert asyncio.run(late_round_then_replay()).status != 200
    window = status_of(control_plane, "cp-1", RACE_NS)["installWindow"]
    assert window["installServed"] is True
