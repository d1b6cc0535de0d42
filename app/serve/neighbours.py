"""The kernel's neighbour table: which MAC sent a packet from an address on our L2 segment.

The appliance shares the nodes' L2 (proxy DHCP needs it), so for a request from a node the kernel has
just resolved the sender's MAC. That binds a request to a machine far better than its address, which
changes between iPXE, the installer's initramfs and the live system (threat-model.md).
"""

from __future__ import annotations

ARP_TABLE = "/proc/net/arp"
INCOMPLETE = "00:00:00:00:00:00"


def link_mac(ip: str, table: str = ARP_TABLE) -> str | None:
    """The MAC the neighbour table holds for `ip` (lower case), or None (not on our L2, loopback)."""
    try:
        with open(table) as f:
            next(f, None)  # header
            for line in f:
                fields = line.split()
                if len(fields) >= 4 and fields[0] == ip and fields[3] != INCOMPLETE:
                    return fields[3].lower()
    except OSError:
        return None
    return None
