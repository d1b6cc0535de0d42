"""UEFI HTTP Boot next to the site's DHCP server: a proxy offer whose boot file is a URL.

Firmware set to HTTP boot sends a DHCPDISCOVER with vendor class `HTTPClient:Arch:…` and wants, beside
the site's address offer, an offer that echoes option 60 `HTTPClient` and names the boot file as a URL
(UEFI spec, HTTP Boot, "DHCP + proxy"; edk2's HttpBootDxe picks "address-only offer + proxy offer with
an IP URI"). dnsmasq's proxy mode answers only vendor class `PXEClient` and stays silent here (2.90,
checked), so serve answers these DISCOVERs itself: no address (yiaddr 0), option 60 `HTTPClient`, and
the URL of the iPXE EFI build the machine would get over TFTP (matchbox/uefi-loaders.json), at
/uefi/<file>. iPXE then asks DHCP again, as PXEClient with user class iPXE, and dnsmasq sends it to
/boot.ipxe like every other machine.

The socket shares UDP 67 with dnsmasq (both set SO_REUSEADDR; broadcasts reach both) and is bound to
the interface holding serve's address, so nothing is answered on other networks.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import json
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.events import Event, Phase
from app.layout import UEFI_BUILDS

log = logging.getLogger("bootstrap_node.serve")
MAGIC = b"\x63\x82\x53\x63"
HTTP_CLIENT = b"HTTPClient"
DISCOVER, OFFER = 1, 2
SIOCGIFADDR = 0x8915
# RFC 4578 / IANA processor architecture types of HTTP Boot clients this answers: x86-64 UEFI over
# HTTP (16) only, the one the tftp/ builds are for.
X64_HTTP = 16
# A DISCOVER from firmware fits one Ethernet frame (IP and UDP headers off 1500); a bigger datagram
# came in fragments, which no boot client sends, and would only cost a parse byte by byte.
MAX_MESSAGE = 1500 - 20 - 8
NO_ADDRESS = "0.0.0.0"  # a client's DISCOVER comes from no address (RFC 2131 4.1): not routed, not relayed


@dataclass(frozen=True)
class Discover:
    xid: bytes
    flags: bytes
    chaddr: bytes  # the 16-byte field as sent
    mac: str
    vendor_class: bytes
    arch: int | None


def dhcp_options(data: bytes) -> dict[int, bytes] | None:
    """The options after the magic cookie (the first of a repeated code), None when one runs past the end."""
    options: dict[int, bytes] = {}
    i = 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:  # pad
            i += 1
            continue
        end = i + 2 + (data[i + 1] if i + 1 < len(data) else len(data))
        if end > len(data):
            return None
        options.setdefault(data[i], data[i + 2:end])
        i = end
    return options


def parse_discover(data: bytes) -> Discover | None:
    """A DHCPDISCOVER from an Ethernet client on this network (giaddr 0: a relayed one's client is
    elsewhere, where a broadcast here never reaches), or None for anything else (malformed included)."""
    if (not 240 <= len(data) <= MAX_MESSAGE or data[0] != 1 or data[1] != 1 or data[2] != 6
            or data[24:28] != bytes(4) or data[236:240] != MAGIC):
        return None
    options = dhcp_options(data)
    if options is None or options.get(53) != bytes([DISCOVER]):
        return None
    vendor_class = options.get(60, b"")
    return Discover(xid=data[4:8], flags=data[10:12], chaddr=data[28:44], mac=data[28:34].hex(":"),
                    vendor_class=vendor_class, arch=client_arch(options.get(93), vendor_class))


def client_arch(option_93: bytes | None, vendor_class: bytes) -> int | None:
    """The client's architecture: option 93's (first) type, else the `Arch:NNNNN` field of its vendor
    class (`HTTPClient:Arch:00016:UNDI:003001`); None when neither says one clearly."""
    if option_93 is not None:
        return int.from_bytes(option_93[:2], "big") if len(option_93) >= 2 and len(option_93) % 2 == 0 else None
    fields = vendor_class.split(b":")
    if len(fields) >= 3 and fields[1] == b"Arch" and len(fields[2]) == 5 and fields[2].isdigit():
        return int(fields[2])
    return None


def wants_http_boot(discover: Discover) -> bool:
    """An x86-64 HTTP Boot client: the tftp/ builds would not run on any other, whose own boot server
    (if the site has one) must not be raced by ours."""
    return discover.vendor_class.startswith(HTTP_CLIENT) and discover.arch == X64_HTTP


def proxy_offer(discover: Discover, server: str, url: str) -> bytes:
    """The proxy offer: our address as server (option 54, siaddr), no address for the client, the URL
    in the file field, option 60 `HTTPClient`."""
    file = url.encode()
    if len(file) > 127:
        raise ValueError(f"boot URL longer than the 128-byte file field: {url}")
    ip = ipaddress.IPv4Address(server).packed
    header = (bytes([2, 1, 6, 0]) + discover.xid + b"\0\0" + discover.flags + bytes(4) + bytes(4) + ip + bytes(4)
              + discover.chaddr + bytes(64) + file.ljust(128, b"\0"))
    options = (bytes([53, 1, OFFER]) + bytes([54, 4]) + ip + bytes([60, len(HTTP_CLIENT)]) + HTTP_CLIENT
               + bytes([255]))
    return header + MAGIC + options


def read_table(table: Path) -> object:
    try:
        return json.loads(table.read_text())
    except (OSError, ValueError, RecursionError):
        return None


def loader_in(data: object, mac: str) -> str | None:
    try:
        name = data.get("nodes", {}).get(mac) or data["default"]
    except (KeyError, AttributeError, TypeError):
        return None
    return name if name in UEFI_BUILDS else None


class LoaderTable:
    """uefi-loaders.json: the iPXE build generate chose per MAC (the cluster's default for a stranger);
    None when the table is missing or unreadable (a foreign Matchbox data dir, say). Parsed again only
    when the file changed: a flood of DISCOVERs must not cost a read and a parse of it each."""

    def __init__(self, path: Path):
        self.path = path
        self._seen: tuple | None = None
        self._data: object = None

    def loader_for(self, mac: str) -> str | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        seen = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if seen != self._seen:
            self._seen, self._data = seen, read_table(self.path)
        return loader_in(self._data, mac)


def interface_of(address: str) -> str | None:
    """The interface whose (primary) IPv4 address is `address`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            try:
                got = fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            if socket.inet_ntoa(got[20:24]) == address:
                return name
    return None


class HttpBootResponder(asyncio.DatagramProtocol):
    """Answers UEFI HTTP Boot DISCOVERs on one interface; `record` gets one dhcp event per answer."""

    def __init__(self, server: str, base_url: str, table: Path, record: Callable[[Event], None]):
        self.server, self.base_url, self.record = server, base_url, record
        self.table = LoaderTable(table)
        self.transport: asyncio.DatagramTransport | None = None
        # While the socket's send buffer is full, answers are dropped (the firmware asks again) rather
        # than queued without bound in the transport as DISCOVERs keep coming.
        self.paused = False

    @classmethod
    async def start(cls, server: str, base_url: str, table: Path, record: Callable[[Event], None]):
        """Listening on the interface holding `server`, or None (said in the log) when it cannot."""
        interface = interface_of(server)
        if interface is None:
            log.warning("UEFI HTTP Boot not answered: no interface holds %s (serve --listen a local address)", server)
            return None
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
            sock.bind(("0.0.0.0", 67))
        except OSError as exc:
            sock.close()
            log.warning("UEFI HTTP Boot not answered: cannot listen on UDP 67 on %s: %s", interface, exc.strerror)
            return None
        responder = cls(server, base_url, table, record)
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: responder, sock=sock)
        log.info("answering UEFI HTTP Boot on %s", interface)
        return responder

    def connection_made(self, transport) -> None:
        self.transport = transport

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    def datagram_received(self, data: bytes, addr) -> None:
        if self.paused or addr[0] != NO_ADDRESS:
            return
        discover = parse_discover(data)
        if discover is None or not wants_http_boot(discover):
            return
        loader = self.table.loader_for(discover.mac)
        if loader is None:
            return
        url = f"{self.base_url}/uefi/{loader}"
        self.transport.sendto(proxy_offer(discover, self.server, url), ("255.255.255.255", 68))
        self.record(Event(Phase.DHCP, mac=discover.mac, source="httpboot", message=f"UEFI HTTP boot file {url}",
                          detail={"bootfile": url, "answer": "proxy offer (HTTPClient)"}))

    def error_received(self, exc: Exception) -> None:  # a send failed: the client asks again
        log.debug("UEFI HTTP Boot: %s", exc)

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
