"""serve's UEFI HTTP Boot answer (app/serve/supervise/httpboot.py): which DISCOVERs it answers, the
proxy offer's bytes, and which iPXE build it names per MAC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.serve.supervise.httpboot import HttpBootResponder, loader_for, parse_discover, proxy_offer, wants_http_boot

MAC = "52:54:00:aa:bb:03"
SERVER = "10.99.0.2"


def discover(vendor: bytes = b"HTTPClient:Arch:00016:UNDI:003000", arch: int | None = 16, kind: int = 1,
             mac: str = MAC) -> bytes:
    """A DHCP message as OVMF's HTTP Boot client sends it (option 93 arch, 60 vendor class)."""
    header = bytes([1, 1, 6, 0]) + b"\x12\x34\x56\x78" + b"\0\0" + b"\x80\0" + bytes(16)
    header += bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0") + bytes(64 + 128)
    options = bytes([53, 1, kind]) + bytes([60, len(vendor)]) + vendor
    if arch is not None:
        options += bytes([93, 2]) + arch.to_bytes(2, "big")
    return header + b"\x63\x82\x53\x63" + options + b"\xff"


def options_of(packet: bytes) -> dict[int, bytes]:
    found, i = {}, 240
    while packet[i] != 255:
        found[packet[i]] = packet[i + 2:i + 2 + packet[i + 1]]
        i += 2 + packet[i + 1]
    return found


def test_an_http_boot_discover_is_recognised():
    got = parse_discover(discover())
    assert got.mac == MAC and got.xid == b"\x12\x34\x56\x78" and got.arch == 16 and got.flags == b"\x80\0"
    assert wants_http_boot(got)


@pytest.mark.parametrize("packet", [
    discover(vendor=b"PXEClient:Arch:00007:UNDI:003016", arch=7),  # dnsmasq's
    discover(arch=19),  # arm64 over HTTP: tftp/ has no build for it
    discover(kind=3),  # a REQUEST to the site's server
])
def test_others_are_left_to_dnsmasq_and_the_site(packet):
    got = parse_discover(packet)
    assert got is None or not wants_http_boot(got)


@pytest.mark.parametrize("packet", [b"", discover()[:239], discover()[:-1].replace(b"\x5d\x02\x00\x10", b"\x5d\x09"),
                                    b"\x02" + discover()[1:]])
def test_malformed_or_replies_are_ignored(packet):
    assert parse_discover(packet) is None


def test_the_proxy_offer_names_the_url_and_gives_no_address():
    url = f"http://{SERVER}:8080/uefi/snponly.efi"
    offer = proxy_offer(parse_discover(discover()), SERVER, url)
    assert offer[0] == 2 and offer[4:8] == b"\x12\x34\x56\x78" and offer[10:12] == b"\x80\0"
    assert offer[16:20] == bytes(4)  # yiaddr: the site's server gives the address
    assert offer[20:24] == bytes([10, 99, 0, 2])  # siaddr
    assert offer[28:34] == bytes.fromhex("525400aabb03")
    assert offer[108:236].rstrip(b"\0") == url.encode()
    assert options_of(offer) == {53: b"\x02", 54: bytes([10, 99, 0, 2]), 60: b"HTTPClient"}


def test_a_url_that_does_not_fit_the_file_field_is_refused():
    with pytest.raises(ValueError, match="128-byte"):
        proxy_offer(parse_discover(discover()), SERVER, "http://x/" + "a" * 130)


def test_the_loader_is_the_nodes_own_or_the_default(tmp_path):
    table = tmp_path / "uefi-loaders.json"
    table.write_text(json.dumps({"default": "snponly.efi", "nodes": {MAC: "ipxe.efi"}}))
    assert loader_for(table, MAC) == "ipxe.efi"
    assert loader_for(table, "52:54:00:aa:bb:99") == "snponly.efi"
    table.write_text(json.dumps({"default": "../credentials/ca.key"}))
    assert loader_for(table, MAC) is None  # only the known builds, never a path
    assert loader_for(tmp_path / "absent.json", MAC) is None
    table.write_text("[]")
    assert loader_for(table, MAC) is None


class Sent:
    def __init__(self):
        self.packets = []

    def sendto(self, data, addr):
        self.packets.append((data, addr))


def test_the_responder_answers_http_clients_once_each_and_records_it(tmp_path):
    table = tmp_path / "uefi-loaders.json"
    table.write_text(json.dumps({"default": "snponly.efi", "nodes": {}}))
    events = []
    responder = HttpBootResponder(SERVER, f"http://{SERVER}:8080", table, events.append)
    responder.connection_made(sent := Sent())
    responder.datagram_received(discover(), ("0.0.0.0", 68))
    responder.datagram_received(discover(vendor=b"PXEClient:Arch:00007:UNDI:003016", arch=7), ("0.0.0.0", 68))
    (packet, addr), = sent.packets
    assert addr == ("255.255.255.255", 68)
    assert packet[108:236].rstrip(b"\0") == b"http://10.99.0.2:8080/uefi/snponly.efi"
    (event,) = events
    assert event.kind == "dhcp" and event.mac == MAC and event.detail["bootfile"].endswith("/uefi/snponly.efi")


def test_without_a_table_nothing_is_answered(tmp_path):
    responder = HttpBootResponder(SERVER, f"http://{SERVER}:8080", Path(tmp_path / "none.json"), lambda e: None)
    responder.connection_made(sent := Sent())
    responder.datagram_received(discover(), ("0.0.0.0", 68))
    assert sent.packets == []
