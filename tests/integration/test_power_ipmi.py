"""IPMI through the real `ipmitool` (lanplus, cipher suite 3) against pyghmi's BMC server, the one
virtualbmc is built on, with an in-memory machine behind it (tests/support/ipmi_bmc.py): virtualbmc itself
needs libvirt, which the lab's BMC mode exercises (`LAB_POWER=ipmi python3 scripts/lab run`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from app.cluster.model import Bmc
from app.power import PowerError, start, wait_for
from app.power.ipmi import Ipmi
from tests.support.paths import REPO

USER, PASSWORD = "admin", "ipmi-test-password"


def udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    if shutil.which("ipmitool") is None:
        pytest.skip("needs ipmitool (Debian: ipmitool)")
    try:
        import pyghmi.ipmi.bmc  # noqa: F401
    except ImportError:
        pytest.skip("needs pyghmi (a test dependency)")
    port = udp_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "support" / "ipmi_bmc.py"), str(port), USER, PASSWORD],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout.readline().strip() == "listening"
    way = ipmi(port)
    deadline = time.monotonic() + 20
    while True:  # the socket is bound just after the line above
        try:
            way.status()
            break
        except PowerError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(10)


def ipmi(port: int, password: str = PASSWORD) -> Ipmi:
    return Ipmi("cp-1", Bmc(address=f"127.0.0.1:{port}", username=USER, password_env="UNUSED"), password=password,
                timeout=30)


def test_power_on_with_a_network_boot_then_disk(server):
    way = ipmi(server)
    assert way.status().power == "off"
    assert start(way) == "network boot once, powering on"
    assert wait_for({"cp-1": way}, "on", 20)["cp-1"].power == "on"
    assert way.status().boot == "pxe (once)"
    way.boot_disk()
    assert way.status().boot.startswith("disk")
    way.off()
    assert wait_for({"cp-1": way}, "off", 20)["cp-1"].power == "off"


def test_a_wrong_password_names_the_node_and_not_the_password(server):
    with pytest.raises(PowerError) as caught:
        ipmi(server, password="wrong-password").status()
    assert caught.value.node == "cp-1"
    assert f"BMC 127.0.0.1:{server}" in caught.value.message and "wrong-password" not in str(caught.value)
