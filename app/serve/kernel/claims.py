"""Which MAC the neighbour table named behind each address, lately: an ARP or NDP claim moves the
kernel's entry without a frame from the claimed MAC on the wire (the sender's hardware address is
taken from the packet's payload), so a MAC that changes behind an address is the mark such a claim
leaves. The red team won cp-1's keys that way: their own address, the victim's MAC in an ARP request.

A machine whose address changes (iPXE, the installer and the installed system each ask DHCP) shows
the same MAC behind a new address, which is no change here; a lease handed to another machine within
`period` is, and costs that install a `reinstall`. Each connection is looked at when it is accepted
and at each request, so a claim made between the handshake (which on a switched network only
completes with the sender's real MAC in our table) and the request is seen too.
"""

from __future__ import annotations

from collections import OrderedDict

MAX_ADDRESSES = 65536  # addresses remembered; the oldest are forgotten first


class LinkHistory:
    def __init__(self, period: float, max_addresses: int = MAX_ADDRESSES):
        self.period, self.max_addresses = period, max_addresses
        self._seen: OrderedDict[str, tuple[str, float]] = OrderedDict()  # address -> (MAC, when)

    def see(self, address: str, mac: str | None, now: float) -> str | None:
        """Note `mac` behind `address`; the other MAC seen behind it within the period, if any."""
        if not address or not mac:
            return None
        before = self._seen.get(address)
        self._seen[address] = (mac, now)
        self._seen.move_to_end(address)
        while len(self._seen) > self.max_addresses:
            self._seen.popitem(last=False)
        if before is not None and before[0] != mac and now - before[1] < self.period:
            return before[0]
        return None
