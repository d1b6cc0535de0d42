"""Wake-on-LAN: a magic packet powers a machine on; it can do nothing else (no off, no state)."""

from __future__ import annotations

import socket

from app.power.base import StatelessWay

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


class WakeOnLan(StatelessWay):
    name = "wol"

    def __init__(self, node: str, mac: str, source_ip: str, broadcast: str, port: int = WOL_PORT):
        super().__init__(node)
        self.mac, self.source_ip, self.broadcast, self.port = mac, source_ip, broadcast, port

    def on(self) -> None:
        try:
            wake([self.mac], self.source_ip, self.broadcast, self.port)
        except OSError as exc:
            raise self.fail(f"cannot send Wake-on-LAN from {self.source_ip} to {self.broadcast}: "
                            f"{exc.strerror or exc}") from None

    def off(self) -> None:
        raise self.fail("Wake-on-LAN cannot power a machine off; use power: redfish or ipmi for that")
