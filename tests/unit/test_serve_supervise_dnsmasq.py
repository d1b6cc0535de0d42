"""dnsmasq log lines (as dnsmasq 2.90 prints them with log-dhcp) → events."""

from app.serve.kernel.neighbours import arp_lookup
from app.serve.supervise.dnsmasq import MAX_REMEMBERED, LogParser, diagnose, tftp_only_conf

LINES = """dnsmasq[4206]: started, version 2.90 DNS disabled
dnsmasq-dhcp[4206]: 1615106997 PXE(srv0) 52:54:00:00:00:11 proxy
dnsmasq-dhcp[4206]: 1615106997 tags: srv0
dnsmasq-dhcp[4206]: 1615106997 PXE(srv0) 10.231.0.50 52:54:00:00:00:11 undionly.kpxe
dnsmasq-dhcp[4206]: 1615106997 bootfile name: undionly.kpxe
dnsmasq-tftp[4206]: sent /out/tftp/undionly.kpxe to 10.231.0.50
dnsmasq-tftp[4206]: sent /out/tftp/ipxe.efi to 10.231.0.77
dnsmasq-tftp[4206]: file /out/tftp/nothing not found""".splitlines()


def test_parser_follows_one_machine_through_dhcp_and_tftp():
    parser = LogParser(neighbour={"10.231.0.77": "52:54:00:00:00:77"}.get)
    events = [parser.feed(line) for line in LINES]
    kinds = [(e.kind, e.mac) if e else None for e in events]
    assert kinds == [("dnsmasq-ready", ""), ("dhcp", "52:54:00:00:00:11"), None, ("dhcp", "52:54:00:00:00:11"),
                     ("dhcp", "52:54:00:00:00:11"), ("tftp", "52:54:00:00:00:11"), ("tftp", "52:54:00:00:00:77"),
                     ("tftp-error", "")]
    assert events[4].detail == {"bootfile": "undionly.kpxe"}
    assert events[3].detail["ip"] == "10.231.0.50"


def test_a_flood_of_spoofed_exchanges_leaves_the_parser_bounded():
    """Issue #33: each spoofed DISCOVER brings a new transaction id, MAC and address."""
    parser = LogParser(neighbour=lambda ip: None)
    for i in range(3 * MAX_REMEMBERED):
        mac = f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"
        parser.feed(f"dnsmasq-dhcp[1]: {i} PXE(srv0) 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255} {mac} x")
    assert len(parser.xid_mac) == len(parser.ip_mac) == MAX_REMEMBERED
    assert parser.feed(f"dnsmasq-dhcp[1]: {3 * MAX_REMEMBERED - 1} bootfile name: f").mac.endswith(":2f:ff")


def test_arp_lookup_reads_the_neighbour_table(tmp_path):
    table = tmp_path / "arp"
    table.write_text("IP address       HW type     Flags       HW address            Mask     Device\n"
                     "10.99.0.135      0x1         0x2         52:54:00:AA:BB:02     *        appl0\n"
                     "10.99.0.136      0x1         0x0         00:00:00:00:00:00     *        appl0\n")
    assert arp_lookup("10.99.0.135", str(table)) == "52:54:00:aa:bb:02"
    assert arp_lookup("10.99.0.136", str(table)) is None
    assert arp_lookup("10.99.0.1", str(tmp_path / "missing")) is None


def test_diagnoses_name_the_fix():
    assert "taken" in diagnose(["dnsmasq: failed to create listening socket for port 67: Address already in use"])
    assert "privileges" in diagnose(["dnsmasq: failed to bind DHCP server socket: Permission denied"])
    assert "nobody" in diagnose(["TFTP directory /x/tftp inaccessible: Permission denied"])


def test_tftp_only_conf_drops_dhcp():
    conf = "port=0\ninterface=eth0\nlog-dhcp\ndhcp-range=10.0.0.0,proxy\npxe-service=x\nenable-tftp\ntftp-root=/t\n"
    assert tftp_only_conf(conf) == "port=0\ninterface=eth0\nenable-tftp\ntftp-root=/t\n"
