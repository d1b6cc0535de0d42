"""The service address with the real kernel, in network namespaces on one bridge: the holder
(app/serve/cluster/address.py, under serve's guardian) adds the address and announces it; a machine on
the LAN that had the old holder's MAC for it moves to the new one on the gratuitous ARP alone; the
holder's parent killed with SIGKILL takes the address off its interface."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tests.root.lan import Lan
from tests.root.netns import require_root_tools, sh
from tests.support.paths import REPO
from tests.support.processes import wait_for

SUBNET = "10.234.0"
SERVICE = f"{SUBNET}.2"
MACS = {"r1": "52:54:00:aa:00:01", "r2": "52:54:00:aa:00:02", "client": "52:54:00:aa:00:50"}
# A stand-in for serve: a parent that starts the guardian + holder, as the runner does, then waits.
PARENT = f"""
import os, subprocess, sys
env = {{**os.environ, "BOOTSTRAP_GUARDIAN_PARENT": str(os.getpid())}}
child = subprocess.Popen([sys.executable, "-m", "app.serve.supervise.guardian", "--", sys.executable, "-m",
                          "app.serve.cluster.address", "eth0", "{SERVICE}/32"], env=env, stdout=subprocess.PIPE)
print(child.stdout.readline().decode().strip(), flush=True)
child.wait()
"""


def holds(lan: Lan, name: str) -> bool:
    return f"{SERVICE}/32" in sh("ip", "-n", lan.machines[name], "-4", "addr", "show", "dev", "eth0").stdout


def mac_for_service(lan: Lan) -> str:
    out = sh("ip", "-n", lan.machines["client"], "neigh", "show", SERVICE, "dev", "eth0").stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else ""


def start_holder(lan: Lan, name: str) -> subprocess.Popen:
    proc = subprocess.Popen(["ip", "netns", "exec", lan.machines[name], sys.executable, "-c", PARENT], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def poke(lan: Lan) -> None:
    """One datagram from the client to the service address: the client's kernel resolves it by ARP."""
    code = f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ({SERVICE!r}, 9))"
    sh("ip", "netns", "exec", lan.machines["client"], sys.executable, "-c", code)


@pytest.fixture
def lan():
    require_root_tools()
    with Lan("va", f"{SUBNET}.1") as lan:
        lan.add("r1", MACS["r1"], f"{SUBNET}.3")
        lan.add("r2", MACS["r2"], f"{SUBNET}.4")
        lan.add("client", MACS["client"], f"{SUBNET}.50")
        yield lan


def test_the_address_follows_the_holder_and_the_lan_follows_the_announcement(lan):
    first = start_holder(lan, "r1")
    procs = [first]
    try:
        assert holds(lan, "r1") and not holds(lan, "r2")
        poke(lan)
        wait_for(lambda: mac_for_service(lan) == MACS["r1"], what="the client to learn r1's MAC for the address")
        first.send_signal(signal.SIGKILL)  # serve killed: the guardian takes the address down
        first.wait(timeout=30)
        wait_for(lambda: not holds(lan, "r1"), what="the address to leave r1")
        assert mac_for_service(lan) == MACS["r1"]  # the client still points at the dead holder
        procs.append(start_holder(lan, "r2"))
        assert holds(lan, "r2")
        # No packet from the client since: only the gratuitous ARP can have moved its entry.
        wait_for(lambda: mac_for_service(lan) == MACS["r2"], what="the client to move to r2 on the announcement")
        procs[-1].send_signal(signal.SIGTERM)  # a clean stop removes it too
        procs[-1].wait(timeout=30)
        wait_for(lambda: not holds(lan, "r2"), what="the address to leave r2")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
