"""Powering nodes on: Wake-on-LAN magic packets today (IPMI/Redfish would live here too)."""

from __future__ import annotations

import socket

WOL_PORT = 9


def magic_packet(mac: str) -> bytes:
    """6 x 0xff, then the MAC 16 times."""
    raw = bytes.fromhex(mac.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {mac}")
    return b"\xff" * 6 + raw * 16


def wake(macs: list[str], source_ip: str, broadcast: str, port: int = WOL_PORT) -> None:
    """Send one magic packet per MAC to the provisioning network's broadcast address, from the
    appliance's own address there so it leaves on the right interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.bind((source_ip, 0))
        for mac in macs:
            s.sendto(magic_packet(mac), (broadcast, port))
