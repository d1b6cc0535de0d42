"""The service address's pure parts (app/serve/cluster/address.py): what --service-address accepts and
the gratuitous ARP frame byte for byte (the kernel-level behaviour is tests/root/test_leader_address.py)."""

from __future__ import annotations

import ipaddress

import pytest

from app.serve.cluster.address import garp_frame, parse
from tests.support.processes import cli


@pytest.mark.parametrize(("text", "expected"), [("10.0.0.2", "10.0.0.2/32"), ("10.0.0.2/24", "10.0.0.2/24")])
def test_parse(text, expected):
    assert str(parse(text)) == expected


@pytest.mark.parametrize(("text", "message"), [("10.0.0.300", "not an address"), ("fd00::2", "IPv6"),
                                                ("eth0", "not an address")])
def test_parse_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_gratuitous_arp_frame():
    mac = bytes.fromhex("525400aabbcc")
    frame = garp_frame(mac, ipaddress.IPv4Address("10.0.0.2"))
    assert len(frame) == 42
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac and frame[12:14] == b"\x08\x06"
    arp = frame[14:]
    assert arp[:8] == bytes.fromhex("0001" "0800" "06" "04" "0001")  # Ethernet, IPv4, request
    assert arp[8:14] == mac and arp[14:18] == bytes([10, 0, 0, 2])  # sender: us, the address
    assert arp[18:24] == b"\x00" * 6 and arp[24:28] == bytes([10, 0, 0, 2])  # target: the same address


def test_service_address_options_are_checked(tmp_path):
    base = ["--output", str(tmp_path / "out"), "serve", "--listen", "127.0.0.1:1"]
    run = cli(*base, "--service-address", "10.0.0.2", "--service-interface", "lo")
    assert run.returncode == 1 and "pass --leader-elect too" in run.stderr
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    elect = [*base, "--leader-elect", "--kubeconfig", str(kubeconfig)]
    run = cli(*elect, "--service-address", "10.0.0.2")
    assert run.returncode == 1 and "go together" in run.stderr
    run = cli(*elect, "--service-address", "fd00::2", "--service-interface", "lo")
    assert run.returncode == 1 and "IPv6" in run.stderr
    run = cli(*elect, "--service-address", "10.0.0.2", "--service-interface", "nosuch0")
    assert run.returncode == 1 and "no such interface" in run.stderr
