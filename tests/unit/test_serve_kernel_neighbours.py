"""The neighbour-table lookup that binds boot requests to machines (app/serve/neighbours.py): the text
table's parser, and the rtnetlink questions and answers (tests/root/test_serve_kernel_neighbours.py asks a
real table of 1,000 entries)."""

import socket
import struct

import pytest

from app.serve.kernel import neighbours
from app.serve.kernel.neighbours import (
    NDA_LLADDR,
    NLMSG_ERROR,
    RTA_GATEWAY,
    RTA_OIF,
    RTM_NEWNEIGH,
    RTM_NEWROUTE,
    Unsupported,
    mac_in_table,
    neighbour_mac,
    parse_address,
    route_interface,
)

HEADER = b"IP address       HW type     Flags       HW address            Mask     Device\n"


def table(*rows: tuple[str, str, str]) -> bytes:
    return HEADER + b"".join(f"{ip:<17}0x1         {flags:<12}{mac:<22}*        eth0\n".encode()
                             for ip, flags, mac in rows)


def test_finds_the_mac_of_exactly_that_address():
    data = table(("10.0.0.10", "0x2", "52:54:00:AA:00:10"), ("10.0.0.1", "0x2", "52:54:00:aa:00:01"),
                 ("10.0.0.100", "0x2", "52:54:00:aa:01:00"))
    assert mac_in_table(data, "10.0.0.1") == "52:54:00:aa:00:01"
    assert mac_in_table(data, "10.0.0.10") == "52:54:00:aa:00:10"  # lower case
    assert mac_in_table(data, "10.0.0.100") == "52:54:00:aa:01:00"


def test_a_prefix_of_an_address_is_not_that_address():
    data = table(("10.0.0.10", "0x2", "52:54:00:aa:00:10"))
    assert mac_in_table(data, "10.0.0.1") is None
    assert mac_in_table(data, "0.0.10") is None


def test_incomplete_entries_do_not_count_but_a_later_complete_one_does():
    data = table(("10.0.0.5", "0x0", "00:00:00:00:00:00"), ("10.0.0.5", "0x2", "52:54:00:aa:00:05"))
    assert mac_in_table(data, "10.0.0.5") == "52:54:00:aa:00:05"
    assert mac_in_table(table(("10.0.0.5", "0x0", "00:00:00:00:00:00")), "10.0.0.5") is None


def test_absent_addresses_the_header_and_odd_input_give_none():
    data = table(("10.0.0.5", "0x2", "52:54:00:aa:00:05"))
    assert mac_in_table(data, "127.0.0.1") is None
    assert mac_in_table(data, "IP") is None
    assert mac_in_table(data, "10.0.0.5\u00e9") is None
    assert mac_in_table(HEADER, "10.0.0.5") is None
    last_line_unterminated = data.rstrip(b"\n")
    assert mac_in_table(last_line_unterminated, "10.0.0.5") == "52:54:00:aa:00:05"


def test_a_thousand_machines_each_find_their_own():
    rows = [(f"10.77.{i // 250}.{i % 250 + 1}", "0x2", f"52:54:40:00:{i >> 8:02x}:{i & 255:02x}") for i in range(1000)]
    data = table(*rows)
    assert all(mac_in_table(data, ip) == mac for ip, _, mac in rows)


# -- rtnetlink: the messages, built and read without a kernel ---------------------------------------


def attribute(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def route(kind: int = 1, *attrs: bytes) -> bytes:
    return struct.pack("=BBBBBBBBI", socket.AF_INET, 32, 0, 0, 254, 0, 0, kind, 0) + b"".join(attrs)


def neighbour(state: int, lladdr: bytes | None) -> bytes:
    head = struct.pack("=BBHiHBB", socket.AF_INET, 0, 0, 3, state, 0, 1)
    return head + attribute(1, bytes([10, 0, 0, 5])) + (attribute(NDA_LLADDR, lladdr) if lladdr is not None else b"")


def message(kind: int, sequence: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 0, sequence, 0) + body + b"\0" * (-len(body) % 4)


def test_addresses_parse_to_what_the_kernel_is_asked():
    assert parse_address("10.0.0.5") == (socket.AF_INET, bytes([10, 0, 0, 5]), 0)
    assert parse_address("::ffff:10.0.0.5") == (socket.AF_INET, bytes([10, 0, 0, 5]), 0)  # dual-stack view
    assert parse_address("2001:db8::5")[0] == socket.AF_INET6
    assert parse_address("fe80::5%1") == (socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "fe80::5"), 1)
    odd = ["", "IP", "10.0.0.5\u00e9", "10.0.0", "10.0.0.5%1", "::ffff:10.0.0.5%1", "fe80::5%no-such-interface-here",
           "fe80::5%0", "fe80::5%2147483648", "fe80::5%\u00b2", "fe80::5%a\0b"]
    for address in odd:
        assert parse_address(address) is None, address


def test_a_link_local_sender_without_its_interface_is_nobody():
    # Every link has fe80::/64: the route lookup would pick one, not the one the request came in on.
    assert parse_address("fe80::5") is None
    assert parse_address("febf::5") is None
    assert parse_address("fec0::5") is not None  # not link-local


def test_only_a_direct_unicast_route_names_an_interface_to_ask():
    oif = attribute(RTA_OIF, struct.pack("=I", 7))
    assert route_interface(route(1, oif)) == 7
    # Through a gateway the replies go to the gateway: an entry for the address itself (which anyone
    # on the L2 can plant with a forged ARP) says nothing about the sender.
    assert route_interface(route(1, attribute(RTA_GATEWAY, bytes([10, 0, 0, 1])), oif)) is None
    assert route_interface(route(2, oif)) is None  # RTN_LOCAL: one of our own addresses
    assert route_interface(route(1)) is None
    assert route_interface(b"\x02") is None


def test_only_an_entry_in_a_valid_state_vouches_for_its_mac():
    mac = bytes.fromhex("525400AA0005")
    for state in (0x02, 0x04, 0x08, 0x10, 0x80):  # reachable, stale, delay, probe, permanent
        assert neighbour_mac(neighbour(state, mac)) == "52:54:00:aa:00:05"
    assert neighbour_mac(neighbour(0x01, mac)) is None  # incomplete
    assert neighbour_mac(neighbour(0x20, mac)) is None  # failed
    assert neighbour_mac(neighbour(0x40, mac)) is None  # noarp: on a link without ARP, our own MAC
    assert neighbour_mac(neighbour(0x02, None)) is None
    assert neighbour_mac(neighbour(0x02, bytes(6))) is None


class FakeKernel:
    """A socket that answers each question with what the test queued, to the sequence it asks."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recvfrom(self, size: int):
        sequence = struct.unpack_from("=IHHII", self.sent[-1])[3]
        port, build = self.answers.pop(0)
        return build(sequence), (port, 0)

    def close(self):
        pass


def ask_with(kernel: FakeKernel, ip: str) -> str | None:
    netlink = neighbours.Netlink()
    netlink._local.sock, netlink._local.sequence = kernel, 0
    return netlink.lookup(ip)


def test_a_lookup_asks_for_the_route_then_that_interfaces_entry():
    oif = attribute(RTA_OIF, struct.pack("=I", 3))
    kernel = FakeKernel((0, lambda s: message(RTM_NEWROUTE, s, route(1, oif))),
                        (0, lambda s: message(RTM_NEWNEIGH, s, neighbour(0x02, bytes.fromhex("525400aa0005")))))
    assert ask_with(kernel, "10.0.0.5") == "52:54:00:aa:00:05"
    asked_index = struct.unpack_from("=BBHi", kernel.sent[1], 16)[3]
    assert asked_index == 3


def test_late_answers_and_strangers_are_not_taken_for_the_answer():
    oif = attribute(RTA_OIF, struct.pack("=I", 3))
    good = neighbour(0x02, bytes.fromhex("525400aa0005"))
    kernel = FakeKernel((0, lambda s: message(RTM_NEWROUTE, s, route(1, oif))),
                        (0, lambda s: message(RTM_NEWNEIGH, s - 1, neighbour(0x02, bytes.fromhex("66" * 6)))),
                        (4242, lambda s: message(RTM_NEWNEIGH, s, neighbour(0x02, bytes.fromhex("77" * 6)))),
                        (0, lambda s: message(RTM_NEWNEIGH, s, good)))
    assert ask_with(kernel, "10.0.0.5") == "52:54:00:aa:00:05"


def test_errors_mean_no_entry_but_an_unknown_question_means_an_old_kernel():
    def error(code):
        return lambda s: message(NLMSG_ERROR, s, struct.pack("=i", -code) + bytes(16))
    oif = attribute(RTA_OIF, struct.pack("=I", 3))
    assert ask_with(FakeKernel((0, error(101))), "10.0.0.5") is None  # ENETUNREACH: no route
    assert ask_with(FakeKernel((0, lambda s: message(RTM_NEWROUTE, s, route(1, oif))), (0, error(2))),
                    "10.0.0.5") is None  # ENOENT: no entry
    with pytest.raises(Unsupported):
        ask_with(FakeKernel((0, lambda s: message(RTM_NEWROUTE, s, route(1, oif))), (0, error(95))), "10.0.0.5")


def test_an_old_kernel_is_asked_through_the_text_table_from_then_on(monkeypatch):
    class Old(neighbours.Netlink):
        def lookup(self, ip, local=None):
            raise Unsupported("EOPNOTSUPP")
    old = Old()
    monkeypatch.setattr(neighbours, "_NETLINK", old)
    monkeypatch.setattr(neighbours, "arp_lookup", lambda ip: "52:54:00:aa:00:05" if ip == "10.0.0.5" else None)
    assert neighbours.link_mac("10.0.0.5") == "52:54:00:aa:00:05"
    assert old.usable is False


def test_the_route_is_asked_from_our_end_of_the_connection():
    _, body = neighbours.route_request(socket.AF_INET, bytes([10, 0, 0, 5]), bytes([10, 0, 0, 1]))
    assert struct.unpack_from("=BBB", body)[1:3] == (32, 32)  # dst_len, src_len
    assert attribute(2, bytes([10, 0, 0, 1])) in body  # RTA_SRC


def test_the_text_table_needs_the_completed_flag_not_just_a_mac():
    # A failed or incomplete entry can keep the MAC it had (flags 0x0).
    assert mac_in_table(table(("10.0.0.5", "0x0", "52:54:00:de:ad:01")), "10.0.0.5") is None
    assert mac_in_table(table(("10.0.0.5", "0x6", "52:54:00:aa:00:05")), "10.0.0.5") == "52:54:00:aa:00:05"


def test_this_kernel_answers_for_loopback_and_odd_input_over_netlink():
    # No root needed: asking is unprivileged. Loopback is a local route: nobody's MAC.
    netlink = neighbours.Netlink()
    assert netlink.lookup("127.0.0.1") is None
    assert netlink.lookup("not an address") is None
    assert netlink.usable


def test_serve_asks_with_the_senders_interface_and_our_end_of_the_connection():
    from app.serve.boot.handlers import sender_mac

    class Transport:
        def __init__(self, peer, ours):
            self.info = {"peername": peer, "sockname": ours}

        def get_extra_info(self, name, default=None):
            return self.info.get(name, default)

    class Request:
        def __init__(self, peer, ours):
            self.transport, self.remote = Transport(peer, ours), peer[0]

    asked = []

    class Ctx:
        @staticmethod
        def neighbour(address, ours):
            asked.append((address, ours))
            return None

    sender_mac(Ctx.neighbour, Request(("10.0.0.5", 4000), ("10.0.0.1", 8080)))
    sender_mac(Ctx.neighbour, Request(("fe80::5", 4000, 0, 7), ("fe80::1", 8080, 0, 7)))
    sender_mac(Ctx.neighbour, Request(("2001:db8::5", 4000, 0, 0), ("2001:db8::1", 8080, 0, 0)))
    assert asked == [("10.0.0.5", "10.0.0.1"), ("fe80::5%7", "fe80::1"), ("2001:db8::5", "2001:db8::1")]
