"""The benchmark's own load generators are right about what they send and parse (bench/openloop.py,
bench/firmware.py): wrong numbers would otherwise look like the server's. In memory only."""

import struct

from bench import firmware, openloop


def test_a_response_head_gives_status_total_length_and_keep_alive():
    assert openloop.parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello") == (200, 43, True)
    assert openloop.parse_head(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n")[::2] == (403, False)
    assert openloop.parse_head(b"HTTP/1.1 200 OK\r\nContent-Le") is None  # head not complete yet


def test_each_installer_asks_for_its_config_after_its_own_pxe_boot():
    queries = [f"mac=m{i}" for i in range(1000)]
    rate, gap = 1000, 0.5
    request = openloop.boot_pairs(queries, "h", rate, gap)
    sent = [request(i) for i in range(4000)]
    ipxe_at = {}
    for slot, (machine, raw) in enumerate(sent):
        route = raw.split(b" ", 2)[1].split(b"?")[0]
        assert f"?{queries[machine]} ".encode() in raw and b"Connection: close" in raw
        if route == b"/ipxe":
            ipxe_at[machine] = slot
        else:
            assert route == b"/ignition"
            assert (slot - ipxe_at[machine]) / rate >= gap  # its PXE boot was at least `gap` earlier
    assert sum(raw.startswith(b"GET /ignition") for _, raw in sent) > 1500


def test_every_simulated_machine_has_its_own_loopback_address():
    addresses = {openloop.machine_address(m) for m in range(5000)}
    assert len(addresses) == 5000
    assert all(a.startswith("127.1.") and 0 < int(a.rsplit(".", 1)[1]) < 255 for a in addresses)


def test_latency_percentiles_count_from_the_schedule():
    out = openloop.Outcome(latencies=[0.001] * 98 + [0.5, 2.0], lateness=[0.0] * 100, statuses={200: 100},
                           sent=100, seconds=1.0)
    row = openloop.summary(out, 100)
    assert row["p50_ms"] == 1.0 and row["p99_ms"] == 2000.0 and row["achieved_rps"] == 100.0


def test_pxe_discover_is_what_firmware_sends_and_the_reply_parser_reads_it_back():
    packet = firmware.dhcp_packet(1, 0x12345678, "52:54:00:aa:bb:01", 7, ipxe=True)
    op, htype, hlen, _, xid, _, flags = struct.unpack("!BBBBIHH", packet[:12])
    assert (op, htype, hlen, xid, flags) == (1, 1, 6, 0x12345678, 0x8000)
    assert packet[28:34] == bytes.fromhex("525400aabb01") and packet[236:240] == firmware.COOKIE
    reply = bytearray(packet)
    reply[0] = 2
    reply[108:117] = b"ipxe.efi\0"
    boot_file, options = firmware.parse_reply(bytes(reply), 0x12345678)
    assert boot_file == "ipxe.efi"
    assert options[53] == b"\x01" and options[60].startswith(b"PXEClient:Arch:00007") and options[77] == b"iPXE"
    assert firmware.parse_reply(bytes(reply), 0x12345679) is None  # another machine's transaction


def test_the_boot_menu_item_is_read_from_pxe_vendor_options():
    vendor = b"\x06\x01\x08" + b"\x09\x06\x80\x00\x03abc" + b"\xff"
    assert firmware.first_menu_item(vendor) == 0x8000
    assert firmware.first_menu_item(b"\x06\x01\x08\xff") is None


def test_tftp_takes_the_expected_block_from_the_transfer_port_only():
    server = ("10.0.0.2", 40000)
    assert firmware._tftp_answer(None, 1, b"\0\6blksize\0" + b"1468\0", server)[0] == "oack"
    assert firmware._tftp_answer(server, 3, b"\0\3\0\3" + b"x" * 10, server) == ("data", server, b"x" * 10)
    assert firmware._tftp_answer(server, 3, b"\0\3\0\2" + b"x", server) is None  # a duplicate of block 2
    assert firmware._tftp_answer(server, 3, b"\0\3\0\3x", ("10.0.0.9", 40000)) is None  # someone else
    assert firmware._tftp_answer(server, 0x10001, b"\0\3\0\1x", server) == ("data", server, b"x")  # wraps


def test_the_installed_callback_carries_the_credential_of_the_served_config():
    config = b'{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/bootstrap-node/credential",' \
             b'"contents":{"source":"data:,s3cr3t-token"}}]}}'
    assert firmware.credential_of(config) == "s3cr3t-token"


def test_the_simulated_installer_reads_the_credential_where_the_appliance_puts_it():
    from app.layout import CREDENTIAL_PATH
    assert firmware.CREDENTIAL_PATH == CREDENTIAL_PATH


def _response_from(chunks: list[bytes]):
    import asyncio

    from bench.response import Response

    loop = asyncio.new_event_loop()
    try:
        done = loop.create_future()
        response = Response(done)
        for chunk in chunks:
            response.received(memoryview(chunk))
        return done.result() if done.done() else None
    finally:
        loop.close()


def test_a_response_is_read_whatever_its_head_and_body_are_split_into():
    body = b'{"ignition":{}}'
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n" + body
    assert _response_from([raw]) == (200, body)
    assert _response_from([raw[:20], raw[20:70], raw[70:]]) == (200, body)
    assert _response_from([raw[:-1]]) is None  # one byte short: not done yet


def test_an_image_is_counted_to_its_end_but_not_kept():
    from bench.response import KEEP_BODY
    length = KEEP_BODY + 10
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length
    assert _response_from([head + b"x" * 1000, b"x" * (length - 1001)]) is None
    assert _response_from([head + b"x" * 1000, b"x" * (length - 1000)]) == (200, b"")
