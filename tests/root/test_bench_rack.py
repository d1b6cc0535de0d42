"""The boot storm's switch (bench/rack.py) delivers each broadcast where a real switch's flood would
matter, and nowhere else: the DISCOVER to the appliance, the DHCP answer to the machine it names
(BOOTP chaddr), ARP both ways; and the machines send no IPv6. A wrong filter would make the storm
measure a network no site has."""

from __future__ import annotations

import socket

import pytest

from bench.firmware import in_netns
from bench.rack import Rack
from tests.root.netns import require_root_tools

MACS = ["52:54:51:00:00:01", "52:54:51:00:00:02", "52:54:51:00:00:03"]
IPS = ["10.78.3.1", "10.78.3.2", "10.78.3.3"]
APPLIANCE = "10.78.0.2"


@pytest.fixture
def rack():
    require_root_tools("nft", "bridge")
    rack = Rack("bnrk", MACS, IPS, APPLIANCE)
    rack.up()
    try:
        assert rack.filter_broadcasts()
        yield rack
    finally:
        rack.down()


def udp(netns: str, port: int) -> socket.socket:
    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        s.bind(("0.0.0.0", port))
        s.settimeout(5)
        return s
    return in_netns(netns, make)


def answer_for(mac: str) -> bytes:
    packet = bytearray(300)
    packet[0] = 2  # BOOTREPLY
    packet[28:34] = bytes.fromhex(mac.replace(":", ""))
    return bytes(packet)


def test_each_dhcp_broadcast_reaches_only_the_port_that_keeps_it(rack):
    appliance = udp(rack.appliance, 67)
    machines = [udp(rack.machine_ns(i), 68) for i in range(len(MACS))]
    try:
        machines[1].sendto(b"discover", ("255.255.255.255", 67))
        assert appliance.recvfrom(2048)[0] == b"discover"
        appliance.sendto(answer_for(MACS[2]), ("255.255.255.255", 68))
        # Then one answer to each machine: what each receives first is its own, never machine 2's.
        for mac in MACS:
            appliance.sendto(answer_for(mac) + mac.encode(), ("255.255.255.255", 68))
        assert machines[2].recvfrom(2048)[0] == answer_for(MACS[2])
        for i, sock in enumerate(machines):
            assert sock.recvfrom(2048)[0] == answer_for(MACS[i]) + MACS[i].encode()
    finally:
        for sock in (appliance, *machines):
            sock.close()


@pytest.mark.parametrize("side", ["machine", "appliance"])
def test_arp_resolves_both_ways(rack, side):
    netns, peer = (rack.machine_ns(0), APPLIANCE) if side == "machine" else (rack.appliance, IPS[2])

    def connect():
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect((peer, 9))  # nothing listens: a refusal means the peer answered
        except ConnectionRefusedError:
            return "refused"
        except OSError as exc:
            return repr(exc)
        finally:
            s.close()
        return "connected"
    assert in_netns(netns, connect) == "refused"


def test_machines_and_switch_have_no_ipv6(rack):
    for netns in (rack.switch, rack.machine_ns(0)):
        assert in_netns(netns, lambda: open("/proc/sys/net/ipv6/conf/all/disable_ipv6").read().strip()) == "1"
