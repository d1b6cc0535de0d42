"""The neighbour-table lookup that binds boot requests to machines (app/serve/neighbours.py)."""

from app.serve.neighbours import mac_in_table

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
