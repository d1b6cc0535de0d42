"""Wake-on-LAN: the magic packet's shape, sent over a real UDP socket."""

import socket

import pytest

from app.power.wol import magic_packet, wake


def test_magic_packet_shape():
    packet = magic_packet("52:54:00:aa:bb:01")
    assert len(packet) == 102 and packet[:6] == b"\xff" * 6
    assert packet[6:] == bytes.fromhex("525400aabb01") * 16
    with pytest.raises(ValueError):
        magic_packet("52:54:00")


def test_wake_sends_one_packet_per_mac():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        macs = ["52:54:00:aa:bb:01", "52:54:00:aa:bb:02"]
        wake(macs, "127.0.0.1", "127.0.0.1", port=rx.getsockname()[1])
        got = [rx.recv(200) for _ in macs]
    assert got == [magic_packet(m) for m in macs]
