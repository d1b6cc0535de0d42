"""The kernel's neighbour table: which MAC sent a packet from an address on our L2 segment.

The appliance shares the nodes' L2 (proxy DHCP needs it), so for a request from a node the kernel has
just resolved the sender's MAC. That binds a request to a machine far better than its address, which
changes between iPXE, the installer's initramfs and the live system (docs/security.md).

The table is asked afresh for every lookup (a binding must never come from a stale copy), over
rtnetlink: which interface the replies to the address go out on (RTM_GETROUTE), then that
interface's entry for the address (RTM_GETNEIGH): two hash lookups in the kernel, whatever the
table's size. The text file /proc/net/arp is the whole table formatted anew for every read, so its
cost grows with the segment; it is the fallback where rtnetlink cannot answer a single-entry
neighbour request (kernels before 5.0, a sandbox without it). bench/neighbours.py compares them.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import threading

log = logging.getLogger("bootstrap_node.serve")
ARP_TABLE = "/proc/net/arp"
INCOMPLETE = b"00:00:00:00:00:00"

# rtnetlink, from <linux/netlink.h>, <linux/rtnetlink.h> and <linux/neighbour.h>.
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
RTM_NEWNEIGH, RTM_GETNEIGH = 28, 30
RTA_DST, RTA_SRC, RTA_OIF, RTA_GATEWAY = 1, 2, 4, 5
RTN_UNICAST = 1
NDA_DST, NDA_LLADDR = 1, 2
# States in which the entry's link-layer address is the neighbour's: reachable, stale, delay, probe,
# permanent. Incomplete and failed entries may keep an old address, and a noarp entry's address is
# not the neighbour's at all (on a link without ARP it is our own): none of them vouches for a machine.
NUD_VOUCHED = 0x02 | 0x04 | 0x08 | 0x10 | 0x80
ATF_COM = 0x2  # /proc/net/arp's flag for a completed entry

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NDMSG = struct.Struct("=BBHiHBB")  # family, pad, pad, ifindex, state, flags, type
_ATTR = struct.Struct("=HH")  # rtattr: length, type
_ERROR = struct.Struct("=i")
TIMEOUT = 1.0  # the kernel answers within the send; this only bounds a kernel that never does


class Unsupported(Exception):
    """This kernel (or sandbox) cannot answer a single-entry neighbour request over rtnetlink."""


def link_mac(ip: str, local: str | None = None) -> str | None:
    """The MAC the neighbour table holds for `ip` (lower case), or None: not on our L2 (routed, our
    own address, loopback), no entry that vouches for one, or not an address. `local`: our end of
    the connection, so that the route looked up is the one the replies take (policy routing)."""
    if _NETLINK.usable:
        try:
            return _NETLINK.lookup(ip, local)
        except Unsupported as exc:
            _NETLINK.usable = False  # an old kernel stays old: ask the text table from now on
            log.warning("the kernel cannot answer single neighbour lookups over rtnetlink (%s); "
                        "reading /proc/net/arp instead, which is slow with many machines", exc)
        except OSError:
            pass  # this once (no descriptor, no buffer): the text table answers, netlink next time
    return arp_lookup(ip)


def arp_lookup(ip: str, table: str = ARP_TABLE) -> str | None:
    """`link_mac` from /proc/net/arp's text (IPv4 only)."""
    try:
        with open(table, "rb") as f:
            data = f.read()
    except OSError:
        return None
    return mac_in_table(data, ip)


def mac_in_table(data: bytes, ip: str) -> str | None:
    """The first complete entry for `ip` in /proc/net/arp's text (header line first; columns: IP
    address, HW type, Flags, HW address, Mask, Device), or None. Complete means the ATF_COM flag: a
    failed or incomplete entry can still show the MAC it had before."""
    needle = b"\n" + ip.encode("ascii", "replace") + b" "
    at = data.find(needle)
    while at >= 0:
        end = data.find(b"\n", at + 1)
        fields = data[at + 1:end if end >= 0 else len(data)].split()
        if len(fields) >= 4 and _flags(fields[2]) & ATF_COM and fields[3] != INCOMPLETE:
            return fields[3].decode("ascii", "replace").lower()
        at = data.find(needle, at + 1)
    return None


def _flags(field: bytes) -> int:
    try:
        return int(field, 16)
    except ValueError:
        return 0


def parse_address(ip: str) -> tuple[int, bytes, int] | None:
    """(family, address bytes, interface index from an IPv6 zone or 0) of a textual address; an
    IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) as the IPv4 one. An IPv6
    link-local address without its zone is None: every link has fe80::/64, and the route lookup
    would pick one of them, not necessarily the one the request came in on."""
    host, _, zone = ip.partition("%")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        if family == socket.AF_INET6 and packed[:12] == b"\0" * 10 + b"\xff\xff":
            return (socket.AF_INET, packed[12:], 0) if not zone else None
        if family == socket.AF_INET6 and zone:
            index = _zone_index(zone)
            return (family, packed, index) if index else None
        if zone or (family == socket.AF_INET6 and packed[0] == 0xFE and packed[1] & 0xC0 == 0x80):
            return None
        return family, packed, 0
    return None


def _zone_index(zone: str) -> int:
    """The interface index an IPv6 zone names (a number or an interface name), or 0."""
    if zone.isascii() and zone.isdigit():
        index = int(zone)
        return index if 0 < index < 1 << 31 else 0
    try:
        return socket.if_nametoindex(zone)
    except (OSError, ValueError):
        return 0


def _attributes(data: bytes, offset: int) -> dict[int, bytes]:
    found = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _ATTR.size:offset + length]  # without NLA_F_NESTED etc.
        offset += (length + 3) & ~3
    return found


def _attribute(kind: int, value: bytes) -> bytes:
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def route_request(family: int, address: bytes, source: bytes | None = None) -> tuple[int, bytes]:
    """`ip route get ADDRESS [from SOURCE]`: with our end of the connection as the source, source
    rules of policy routing pick the table the replies really use."""
    bits = len(address) * 8
    body = _RTMSG.pack(family, bits, bits if source else 0, 0, 0, 0, 0, 0, 0) + _attribute(RTA_DST, address)
    if source:
        body += _attribute(RTA_SRC, source)
    return RTM_GETROUTE, body


def neighbour_request(family: int, address: bytes, index: int) -> tuple[int, bytes]:
    return RTM_GETNEIGH, _NDMSG.pack(family, 0, 0, index, 0, 0, 0) + _attribute(NDA_DST, address)


def route_interface(body: bytes) -> int | None:
    """The interface a route answer reaches the address on directly, or None: through a gateway (the
    replies go to the gateway's MAC, so an entry for the address itself says nothing about who is on
    the other end: anyone on the L2 can plant one with a forged ARP), or not a unicast route (one of
    our own addresses, a blackhole)."""
    if len(body) < _RTMSG.size or _RTMSG.unpack_from(body)[7] != RTN_UNICAST:
        return None
    attrs = _attributes(body, _RTMSG.size)
    oif = attrs.get(RTA_OIF, b"")
    if RTA_GATEWAY in attrs or len(oif) != 4:
        return None
    return struct.unpack("=I", oif)[0]


def neighbour_mac(body: bytes) -> str | None:
    """The link-layer address of a neighbour answer, when the entry is in a state that vouches for it."""
    if len(body) < _NDMSG.size or not _NDMSG.unpack_from(body)[4] & NUD_VOUCHED:
        return None
    lladdr = _attributes(body, _NDMSG.size).get(NDA_LLADDR, b"")
    if not lladdr or not any(lladdr):
        return None
    return ":".join(f"{b:02x}" for b in lladdr)


class Netlink:
    """Single-entry rtnetlink questions, one socket per thread (the serve loop asks from one)."""

    def __init__(self) -> None:
        self.usable = True
        self._local = threading.local()

    def lookup(self, ip: str, local: str | None = None) -> str | None:
        parsed = parse_address(ip)
        if parsed is None:
            return None
        family, address, index = parsed
        ours = parse_address(local) if local else None
        source = ours[1] if ours and ours[0] == family else None
        if not index:
            route = self.ask(*route_request(family, address, source), answer=RTM_NEWROUTE)
            index = route_interface(route) if route is not None else None
            if index is None:
                return None
        neighbour = self.ask(*neighbour_request(family, address, index), answer=RTM_NEWNEIGH)
        return neighbour_mac(neighbour) if neighbour is not None else None

    def ask(self, kind: int, body: bytes, answer: int) -> bytes | None:
        """The kernel's answer's body, or None when it answered with an error (no such entry, no
        route); Unsupported when this kernel has no such question or no netlink at all; OSError when
        the socket failed (it is dropped, the next question makes another)."""
        sock, sequence = self._socket()
        try:
            sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST, sequence, 0) + body)
            while True:
                data, (port, _groups) = sock.recvfrom(65536)
                if port != 0:
                    continue  # only the kernel answers questions
                found = _reply(data, sequence, answer)
                if found is not None:
                    return found[0]
        except OSError:  # a timeout included
            self._local.sock = None
            sock.close()
            raise

    def _socket(self) -> tuple[socket.socket, int]:
        local = self._local
        if getattr(local, "sock", None) is None:
            try:
                sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            except AttributeError as exc:  # a platform without AF_NETLINK
                raise Unsupported(str(exc)) from None
            except OSError as exc:
                if exc.errno in (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.EPERM, errno.EACCES):
                    raise Unsupported(str(exc)) from None  # a sandbox without rtnetlink: for good
                raise  # no descriptor or buffer just now: the text table answers this once
            try:
                sock.bind((0, 0))
                sock.settimeout(TIMEOUT)
            except OSError:
                sock.close()
                raise
            local.sock, local.sequence = sock, 0
        local.sequence = (local.sequence + 1) & 0xFFFFFFFF
        return local.sock, local.sequence


def _reply(data: bytes, sequence: int, answer: int) -> tuple[bytes | None] | None:
    """(body,) of the answer to `sequence` in one datagram, (None,) for an error answer, or None when
    the datagram holds no answer to it (a late answer to an earlier question)."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, seq, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            return None
        body = data[offset + _HEADER.size:offset + length]
        offset += (length + 3) & ~3
        if seq != sequence:
            continue
        if kind == NLMSG_ERROR:
            code = -_ERROR.unpack_from(body)[0] if len(body) >= _ERROR.size else errno.EIO
            if code in (errno.EOPNOTSUPP, errno.ENOSYS):
                raise Unsupported(errno.errorcode.get(code, str(code)))
            return (None,)  # ENOENT, ENETUNREACH, EINVAL...: the kernel holds nothing for it
        if kind == answer:
            return (body,)
    return None


_NETLINK = Netlink()
