"""Two real `serve --leader-elect --service-address` replicas on a lab-like LAN of network namespaces,
electing through a Lease on the real API server: only the leader runs dnsmasq (port 67 open in its
namespace only) and holds bootstrap.ip; a PXE client and HTTP reach it there. Killed with SIGKILL,
its dnsmasq and its address go with it, and the standby starts its own and takes the address over;
the client's ARP entry follows the gratuitous ARP and PXE answers again from the new leader; a node
that took its install config from the first leader gets its final config from the second.

The control plane's namespace is joined to the LAN's bridge; each replica reaches cp-1's address
through it (the API server's certificate names that address).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from app.events.model import epoch
from tests.root.lan import Lan, events
from tests.root.netns import require_root_tools, sh
from tests.support.assets import standin_assets
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import wait_for
from tests.support.secrets import cluster_secrets, leaked
from tests.support.serve import credential_in

SUBNET = "10.235.0"
SERVICE = f"{SUBNET}.2"  # bootstrap.ip of the generated tree: what the nodes are told to use
CP_ON_LAN = f"{SUBNET}.9"
REPLICAS = {"r1": ("52:54:00:bb:00:01", f"{SUBNET}.3"), "r2": ("52:54:00:bb:00:02", f"{SUBNET}.4")}
CLIENT = ("52:54:00:bb:00:50", f"{SUBNET}.50")
NODE = ("52:54:00:00:00:11", f"{SUBNET}.11")  # cp-1, which installs across the takeover
IPXE_DIR = Path("/usr/lib/ipxe")
LEASE, RENEW, RETRY = 4, 3.0, 0.5
LATENCY = 1.5  # what API round trips and a busy 2-core machine may add to a bound (seconds)
CP_API = "10.0.0.11:6443"  # cp-1 of cluster.yaml.example, as the control plane fixture runs it


@pytest.fixture(scope="module")
def tree():
    """The example cluster moved to SUBNET, generated; a directory dnsmasq (user nobody) can read."""
    require_root_tools("dnsmasq", "ss")
    pytest.importorskip("scapy", reason="needs scapy for the PXE client probe (test extra)")
    if not (IPXE_DIR / "undionly.kpxe").exists():
        pytest.skip("needs Debian's ipxe package (/usr/lib/ipxe/undionly.kpxe)")
    tmp = Path(tempfile.mkdtemp(prefix="bn-ha-", dir="/tmp"))
    tmp.chmod(0o755)
    config = tmp / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("10.0.0.", f"{SUBNET}.").replace("api_server_name: api.lab.example.com", ""))
    out = tmp / "output"
    gen = subprocess.run([sys.executable, "-m", "app", "--config", str(config), "--output", str(out), "--templates",
                          "/nonexistent", "generate", "--ipxe-dir", str(IPXE_DIR)], cwd=REPO, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    yield tmp, config, out
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def lan(control_plane, tmp_path):
    """The LAN, the replicas' and a client's namespaces on it, and the control plane joined to it.
    Yields (lan, kubeconfig aimed at cp-1's address)."""
    assert control_plane.advertise_address == CP_API.split(":")[0]
    with Lan("ha", f"{SUBNET}.1") as lan:
        for name, (mac, ip) in REPLICAS.items():
            lan.add(name, mac, ip)
            sh("ip", "-n", lan.machines[name], "route", "add", f"{control_plane.advertise_address}/32", "via", CP_ON_LAN)
        lan.add("client", *CLIENT)
        lan.add("node", *NODE)
        sh("ip", "link", "add", "bnhacp", "type", "veth", "peer", "name", "bnhacp2")
        sh("ip", "link", "set", "bnhacp", "netns", lan.server)
        sh("ip", "-n", lan.server, "link", "set", "bnhacp", "master", "br0", "up")
        sh("ip", "link", "set", "bnhacp2", "netns", control_plane.netns.name)
        sh("ip", "-n", control_plane.netns.name, "addr", "add", f"{CP_ON_LAN}/24", "dev", "bnhacp2")
        sh("ip", "-n", control_plane.netns.name, "link", "set", "bnhacp2", "up")
        conf = yaml.safe_load(control_plane.admin_conf.read_text())
        conf["clusters"][0]["cluster"]["server"] = f"https://{control_plane.advertise_address}:6443"
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(conf))
        kubeconfig.chmod(0o600)
        try:
            yield lan, kubeconfig
        finally:
            sh("ip", "-n", control_plane.netns.name, "link", "del", "bnhacp2", check=False)


def start(lan: Lan, name: str, tree, kubeconfig: Path) -> subprocess.Popen:
    tmp, config, out = tree
    return subprocess.Popen(
        ["ip", "netns", "exec", lan.machines[name], sys.executable, "-m", "app", "--config", str(config), "--output",
         str(out), "serve", "--assets", str(standin_assets(tmp / "assets", config)), "--leader-elect", "--kubeconfig", str(kubeconfig), "--identity", name,
         "--lease-name", "serve-ha", "--lease-duration", str(LEASE), "--renew-deadline", str(RENEW), "--retry-period",
         str(RETRY), "--service-address", f"{SERVICE}/32", "--service-interface", "eth0"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def dhcp_open(lan: Lan, name: str) -> bool:
    return bool(sh("ip", "netns", "exec", lan.machines[name], "ss", "-Hlun", "sport = :67").stdout.strip())


def holds_service(lan: Lan, name: str) -> bool:
    return f"{SERVICE}/32" in sh("ip", "-n", lan.machines[name], "-4", "addr", "show", "dev", "eth0").stdout


def leading_events(out: Path) -> list[str]:
    return [e["detail"]["identity"] for e in events(out) if e["kind"] == "leading"]


def probe(lan: Lan, ipxe: bool = False) -> dict:
    args = ["ip", "netns", "exec", lan.machines["client"], sys.executable, "-m", "tests.root.pxe_probe", "eth0",
            CLIENT[0], "0", CLIENT[1]] + (["ipxe"] if ipxe else [])
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def api_connected(lan: Lan, name: str) -> bool:
    """The replica has a connection open to the API server (it is past start-up and campaigning)."""
    run = sh("ip", "netns", "exec", lan.machines[name], "ss", "-Htn", "state", "established", "dst", f"{CP_API}")
    return bool(run.stdout.strip())


def client_mac_for_service(lan: Lan) -> str:
    out = sh("ip", "-n", lan.machines["client"], "neigh", "show", SERVICE, "dev", "eth0").stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else ""


def test_only_the_leader_answers_pxe_and_the_standby_takes_over(tree, lan):
    lan, kubeconfig = lan
    _, _, out = tree
    procs = {name: start(lan, name, tree, kubeconfig) for name in REPLICAS}
    try:
        wait_for(lambda: leading_events(out) or any(p.poll() is not None for p in procs.values()), timeout=90,
                 what="a replica to lead")
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name}: {proc.stderr.read().decode()[-3000:]}"
        leader = leading_events(out)[0]
        standby = next(name for name in REPLICAS if name != leader)
        wait_for(lambda: any(e["kind"] == "dnsmasq-ready" for e in events(out)), timeout=60, what="dnsmasq")
        assert dhcp_open(lan, leader) and holds_service(lan, leader)
        assert not dhcp_open(lan, standby) and not holds_service(lan, standby)
        status, body = lan.http("client", f"http://{SERVICE}:8080/healthz")
        assert (status, body) == (200, b"leader\n")
        # The standby, on its own address: alive, not ready, and nothing of the boot API.
        own = f"http://{REPLICAS[standby][1]}:8080"
        assert lan.http("client", f"{own}/healthz") == (200, b"standby\n")
        assert lan.http("client", f"{own}/readyz")[0] == 503
        status, body = lan.http("client", f"{own}/ignition?mac=52:54:00:00:00:11")
        assert status == 503 and b"holds the Lease" in body and b"ignition" not in body.lower(), body
        assert probe(lan, ipxe=True)["file"] == f"http://{SERVICE}:8080/boot.ipxe"
        assert client_mac_for_service(lan) == REPLICAS[leader][0]
        # cp-1 starts installing from this leader: PXE opens its window, it takes its install config.
        url = f"http://{SERVICE}:8080"
        status, script = lan.http("node", f"{url}/ipxe?mac={NODE[0]}")
        assert status == 200 and b"kernel " in script
        status, install = lan.http("node", f"{url}/ignition?mac={NODE[0]}")
        assert status == 200
        credential = credential_in(install)
        # The standby wrote nothing: one leader, one start, in the shared log.
        kinds = [e["kind"] for e in events(out)]
        assert leading_events(out) == [leader] and kinds.count("serve-started") == 1, kinds

        killed_at = time.monotonic()
        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(timeout=30)
        wait_for(lambda: not dhcp_open(lan, leader) and not holds_service(lan, leader), timeout=30,
                 what="the killed leader's dnsmasq and address to go")
        wait_for(lambda: dhcp_open(lan, standby) and holds_service(lan, standby), timeout=LEASE + 2 * RETRY + 30,
                 what="the standby to start dnsmasq and take the address")
        took = time.monotonic() - killed_at
        assert leading_events(out) == [leader, standby]
        # The client's entry moved on the announcement, before it sent anything to the new holder.
        wait_for(lambda: client_mac_for_service(lan) == REPLICAS[standby][0], timeout=20,
                 what="the client's ARP entry to follow the address")
        wait_for(lambda: [e["kind"] for e in events(out)].count("dnsmasq-ready") == 2, timeout=30,
                 what="the new leader's dnsmasq to be ready")
        assert probe(lan)["file"] == "undionly.kpxe"
        assert probe(lan, ipxe=True)["file"] == f"http://{SERVICE}:8080/boot.ipxe"
        assert lan.http("client", f"http://{SERVICE}:8080/healthz") == (200, b"leader\n")
        # cp-1, mid-install, goes on with the new leader: its window and credential came through the log.
        status, final = lan.http("node", f"{url}/ignition?mac={NODE[0]}&os=installed",
                                 {"Authorization": f"Bearer {credential}"})
        assert status == 200 and "ca.key" in leaked(final, cluster_secrets(out))
        print(f"serve takeover after SIGKILL: dnsmasq and address on the standby {took:.2f} s after the kill "
              f"(lease {LEASE} s, retry {RETRY} s), load {os.getloadavg()[0]:.1f}")
        # The killed one comes back as a standby; the leader stops cleanly: it releases the Lease after
        # its dnsmasq stopped, and the other takes over at its next look, not a lease later.
        procs[leader] = start(lan, leader, tree, kubeconfig)
        wait_for(lambda: api_connected(lan, leader) or procs[leader].poll() is not None, timeout=60,
                 what="the restarted replica to reach the API")
        procs[standby].send_signal(signal.SIGTERM)
        assert procs[standby].wait(timeout=60) == 0
        assert not holds_service(lan, standby) and not dhcp_open(lan, standby)
        wait_for(lambda: len(leading_events(out)) == 3, timeout=RETRY + 30, what="the restarted replica to lead")
        stopped = [e for e in events(out) if e["kind"] == "leading-stopped"]
        assert [e["detail"]["identity"] for e in stopped] == [standby]  # the killed one could not say so
        taken = [e for e in events(out) if e["kind"] == "leading"][-1]
        assert taken["detail"]["identity"] == leader
        handover = epoch(taken["ts"]) - epoch(stopped[-1]["ts"])
        assert 0 <= handover <= RETRY + LATENCY, handover
        wait_for(lambda: dhcp_open(lan, leader) and holds_service(lan, leader), timeout=30,
                 what="dnsmasq and the address back on the first replica")
        print(f"serve handover after SIGTERM: {handover:.2f} s from leading-stopped to leading, "
              f"load {os.getloadavg()[0]:.1f}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
