"""serve's UEFI HTTP Boot answer (app/serve/supervise/httpboot.py): which DISCOVERs it answers, the
proxy offer's bytes, and which iPXE build it names per MAC."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.serve.supervise.httpboot import HttpBootResponder, LoaderTable, parse_discover, proxy_offer, wants_http_boot

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
    assert LoaderTable(table).loader_for(MAC) == "ipxe.efi"
    assert LoaderTable(table).loader_for("52:54:00:aa:bb:99") == "snponly.efi"
    table.write_text(json.dumps({"default": "../credentials/ca.key"}))
    assert LoaderTable(table).loader_for(MAC) is None  # only the known builds, never a path
    assert LoaderTable(tmp_path / "absent.json").loader_for(MAC) is None
    table.write_text("[]")
    assert LoaderTable(table).loader_for(MAC) is None


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


def with_giaddr(packet: bytes) -> bytes:
    return packet[:24] + bytes([10, 0, 0, 1]) + packet[28:]


def padded(packet: bytes, size: int) -> bytes:
    """The same DISCOVER grown to `size` bytes with pad options before its end option."""
    return packet[:-1] + bytes(size - len(packet)) + b"\xff"


@pytest.mark.parametrize("packet", [
    discover(vendor=b"HTTPClient:Arch:00019:UNDI:003001", arch=None),  # arm64 saying so only in option 60
    discover(vendor=b"HTTPClient", arch=None),  # says no architecture at all
    discover()[:-1].replace(b"\x5d\x02\x00\x10", b"\x5d\x01\x00") + b"\xff",  # option 93 cut to one byte
    with_giaddr(discover()),  # relayed: its client is on another network
    padded(discover(), 1473),  # larger than one Ethernet frame holds
])
def test_only_x86_64_http_clients_on_this_network_are_answered(packet):
    got = parse_discover(packet)
    assert got is None or not wants_http_boot(got)


def test_the_architecture_may_come_from_the_vendor_class_alone():
    assert wants_http_boot(parse_discover(discover(arch=None)))  # HTTPClient:Arch:00016:…
    assert wants_http_boot(parse_discover(padded(discover(), 1472)))


def responder_on(tmp_path, events: list) -> tuple[HttpBootResponder, Sent]:
    table = tmp_path / "uefi-loaders.json"
    table.write_text(json.dumps({"default": "snponly.efi", "nodes": {}}))
    responder = HttpBootResponder(SERVER, f"http://{SERVER}:8080", table, events.append)
    responder.connection_made(sent := Sent())
    return responder, sent


def test_a_discover_from_an_address_is_not_answered(tmp_path):
    """A client without a lease sends from 0.0.0.0; from an address, it was routed here or crafted to
    turn one unicast packet into a broadcast on the provisioning LAN."""
    responder, sent = responder_on(tmp_path, events := [])
    responder.datagram_received(discover(), ("192.0.2.7", 68))
    responder.datagram_received(discover(), ("10.99.0.50", 67))
    assert sent.packets == [] and events == []
    responder.datagram_received(discover(), ("0.0.0.0", 68))
    assert len(sent.packets) == 1


def test_answers_are_dropped_not_queued_while_the_send_buffer_is_full(tmp_path):
    responder, sent = responder_on(tmp_path, events := [])
    responder.pause_writing()  # what the transport calls once its buffer passes the high-water mark
    for _ in range(3):
        responder.datagram_received(discover(), ("0.0.0.0", 68))
    assert sent.packets == [] and events == []
    responder.resume_writing()
    responder.datagram_received(discover(), ("0.0.0.0", 68))
    assert len(sent.packets) == 1 and len(events) == 1


def test_the_table_is_parsed_again_only_when_it_changed(tmp_path, monkeypatch):
    from app.serve.supervise import httpboot
    parsed = []
    monkeypatch.setattr(httpboot, "read_table", lambda path: parsed.append(path) or json.loads(path.read_text()))
    responder, sent = responder_on(tmp_path, [])
    for _ in range(3):
        responder.datagram_received(discover(), ("0.0.0.0", 68))
    assert len(parsed) == 1 and len(sent.packets) == 3
    (tmp_path / "uefi-loaders.json").write_text(json.dumps({"default": "ipxe.efi", "nodes": {MAC: "ipxe.efi"}}))
    responder.datagram_received(discover(), ("0.0.0.0", 68))
    assert len(parsed) == 2 and sent.packets[-1][0][108:236].rstrip(b"\0").endswith(b"/uefi/ipxe.efi")
