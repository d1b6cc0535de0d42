"""What a PXE-booting machine does on the wire, as one coroutine: PXE firmware's proxy-DHCP exchange,
TFTP of iPXE, iPXE's own proxy-DHCP exchange, /boot.ipxe, /ipxe, kernel and initrd, then the
installer's Ignition fetch and its `installed` callback. Each step is timed.

Sockets are opened inside the machine's network namespace (bench/rack.py) and then driven from an
asyncio loop, so a thousand machines cost a thousand coroutines, not a thousand processes (spread
over a few processes' loops by bench/shards.py). Retries
follow firmware: DHCP retransmits after 4, 8, 16 s (the PXE spec's schedule); TFTP retransmits a
packet after 1 s, doubling to 8 s, at most 8 times; an HTTP request is retried 3 times.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

from app.serve.supervise.httpboot import dhcp_options
from bench.response import Pooled, exchange

DHCP_TIMEOUTS = (4.0, 8.0, 16.0)
TFTP_TIMEOUT, TFTP_MAX_TIMEOUT, TFTP_TRIES = 1.0, 8.0, 8
HTTP_TIMEOUT, HTTP_TRIES = 120.0, 3
COOKIE = b"\x63\x82\x53\x63"
CREDENTIAL_PATH = "/etc/bootstrap-node/credential"  # app.layout.CREDENTIAL_PATH, as the installer reads it
ARCH = {"bios": (0, 1432), "uefi": (7, 1468)}  # DHCP option 93 and the TFTP block size firmware asks
TFTP_PROBE = None  # bench/shards.py's Probe.block(sock, sent_at) per DATA block taken, when it measures


class StepFailed(Exception):
    pass


@dataclass
class Machine:
    index: int
    mac: str
    ip: str
    netns: str
    firmware: str  # bios | uefi
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    retries: dict[str, int] = field(default_factory=dict)
    error: str = ""
    install_config_at: float | None = None  # seconds after the storm began
    done_at: float | None = None

    def retry(self, step: str) -> None:
        self.retries[step] = self.retries.get(step, 0) + 1


# -- network namespaces ---------------------------------------------------------------------------------
_libc = None


def in_netns(netns: str, make):
    """Call make() with this thread in `netns` (sockets keep the namespace they were made in)."""
    global _libc
    if _libc is None:
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(target, 0x40000000) != 0:  # CLONE_NEWNET
            raise OSError(f"setns {netns} failed")
        try:
            return make()
        finally:
            _libc.setns(home, 0x40000000)
    finally:
        os.close(home)
        os.close(target)


# -- DHCP -----------------------------------------------------------------------------------------------
def dhcp_packet(kind: int, xid: int, mac: str, arch: int, ipxe: bool, ciaddr: str = "0.0.0.0",
                menu_item: int | None = None) -> bytes:
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    head = struct.pack("!BBBBIHH4s4s4s4s16s", 1, 1, 6, 0, xid, 0, 0x8000, socket.inet_aton(ciaddr), bytes(4),
                       bytes(4), bytes(4), chaddr) + bytes(192) + COOKIE
    options = [(53, bytes([kind])), (60, f"PXEClient:Arch:{arch:05d}:UNDI:002001".encode()),
               (93, arch.to_bytes(2, "big")), (94, b"\x01\x02\x01"), (97, b"\0" + os.urandom(16))]
    if ipxe:
        options.append((77, b"iPXE"))
    if menu_item is not None:
        options.append((43, b"\x47\x04" + menu_item.to_bytes(2, "big") + b"\0\0\xff"))
    return head + b"".join(bytes([c, len(v)]) + v for c, v in options) + b"\xff"


def parse_reply(data: bytes, xid: int) -> tuple[str, dict[int, bytes]] | None:
    """(boot file, options) of a BOOTREPLY for this transaction, else None."""
    if len(data) < 240 or data[0] != 2 or struct.unpack("!I", data[4:8])[0] != xid or data[236:240] != COOKIE:
        return None
    options = dhcp_options(data)
    if options is None:
        return None
    return data[108:236].rstrip(b"\0").decode(errors="replace"), options


def first_menu_item(vendor: bytes) -> int | None:
    """PXE option 43 sub-option 9 (boot menu): the first item's type."""
    i = 0
    while i + 2 <= len(vendor) and vendor[i] != 255:
        code, length = vendor[i], vendor[i + 1]
        if code == 9 and length >= 2:
            return int.from_bytes(vendor[i + 2:i + 4], "big")
        i += 2 + length
    return None


class _Datagrams(asyncio.DatagramProtocol):
    """Answers for one DHCP transaction; the proxy's broadcast offers to every other machine on the
    segment are dropped here, before they cost a coroutine wake-up."""

    def __init__(self, xid: int) -> None:
        self.xid = struct.pack("!I", xid)
        self.queue: asyncio.Queue = asyncio.Queue()

    def datagram_received(self, data, addr) -> None:
        if data[4:8] == self.xid:
            self.queue.put_nowait((data, addr))


async def _exchange(transport, proto: _Datagrams, packet: bytes, to: tuple, accept, machine: Machine,
                    step: str, timeouts=DHCP_TIMEOUTS):
    """Send, then wait for an accepted answer; resend on each timeout."""
    for n, timeout in enumerate(timeouts):
        if n:
            machine.retry(step)
        transport.sendto(packet, to)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                data, addr = await asyncio.wait_for(proto.queue.get(), left)
            except TimeoutError:
                break
            answer = accept(data, addr)
            if answer is not None:
                return answer
    raise StepFailed(f"{step}: no answer after {len(timeouts)} tries")


async def proxy_dhcp(machine: Machine, ipxe: bool, step: str) -> str:
    """DISCOVER (broadcast) -> the proxy's OFFER; then the boot-server REQUEST on UDP 4011 -> ACK with
    the boot file. The site's DHCP server (addresses) is not simulated: each machine has its lease."""
    arch, _ = ARCH[machine.firmware]

    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        s.bind(("0.0.0.0", 68))
        s.setblocking(False)
        return s

    loop = asyncio.get_running_loop()
    xid = random.getrandbits(32)
    transport, proto = await loop.create_datagram_endpoint(lambda: _Datagrams(xid),
                                                           sock=in_netns(machine.netns, make))
    try:
        offer = await _exchange(transport, proto, dhcp_packet(1, xid, machine.mac, arch, ipxe),
                                ("255.255.255.255", 67),
                                lambda d, a: (r, a[0]) if (r := parse_reply(d, xid)) else None, machine, step)
        (_, options), server = offer
        item = first_menu_item(options.get(43, b""))
        request = dhcp_packet(3, xid, machine.mac, arch, ipxe, machine.ip, item)
        ack = await _exchange(transport, proto, request, (server, 4011), lambda d, a: parse_reply(d, xid),
                              machine, step)
        return ack[0]
    finally:
        transport.close()


# -- TFTP -----------------------------------------------------------------------------------------------
def _tftp_answer(peer: tuple | None, want: int, data: bytes, addr: tuple):
    """("oack" | "data", sender, payload) when `data` is what we wait for (block `want`), else None."""
    if peer is not None and addr != peer:
        return None
    opcode = int.from_bytes(data[:2], "big")
    if opcode == 5:
        raise StepFailed(f"tftp error: {data[4:-1].decode(errors='replace')}")
    if opcode == 6 and want == 1 and peer is None:
        return ("oack", addr, data)
    if opcode == 3 and int.from_bytes(data[2:4], "big") == want & 0xFFFF:
        return ("data", addr, data[4:])
    return None


class _TftpTransfer(asyncio.DatagramProtocol):
    """One TFTP read as a state machine run from the socket's callbacks (no coroutine wake-up per
    block: a thousand machines' blocks must not cost the simulator more than the server). A packet
    unanswered for its timeout is sent again; TFTP_TRIES in a row unanswered fail the transfer."""

    def __init__(self, machine: Machine, sock: socket.socket, server: str, rrq: bytes, blksize: int,
                 done: asyncio.Future):
        self.machine, self.sock, self.blksize, self.done = machine, sock, blksize, done
        self.last = (rrq, (server, 69))
        self.peer: tuple | None = None
        self.block = self.received = self.tries = 0
        self.sent_at = 0.0
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send(*self.last)
        self._tick()

    def _send(self, packet: bytes, to: tuple) -> None:
        self.last, self.sent_at = (packet, to), time.monotonic()
        if self.peer is None:
            self.transport.sendto(packet, to)
            return
        try:
            self.sock.send(packet)
        except OSError:
            pass  # as a packet lost on the wire: the timer sends it again

    def _tick(self) -> None:
        if self.done.done():
            return
        if time.monotonic() - self.sent_at > min(TFTP_TIMEOUT * 2 ** self.tries, TFTP_MAX_TIMEOUT):
            self.tries += 1
            if self.tries >= TFTP_TRIES:
                self.done.set_exception(StepFailed(f"tftp: block {self.block + 1} unanswered {TFTP_TRIES} times"))
                return
            self.machine.retry("tftp")
            self._send(*self.last)
        asyncio.get_running_loop().call_later(0.2, self._tick)

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self.done.done():
            return
        try:
            answer = _tftp_answer(self.peer, self.block + 1, data, addr)
        except StepFailed as exc:
            self.done.set_exception(exc)
            return
        if answer is None:
            return
        kind, peer, payload = answer
        if self.peer is None:
            # The transfer's port is known: the socket is connected to it, so the kernel filters
            # other senders and neither side's packets need a route lookup each (the datagrams on
            # the wire are the same).
            self.peer = peer
            self.sock.connect(peer)
        self.tries = 0
        if TFTP_PROBE is not None and kind == "data":
            TFTP_PROBE(self.sock, self.sent_at)
        if kind == "oack":
            self._send(b"\0\4\0\0", self.peer)
            return
        self.block += 1
        self.received += len(payload)
        self._send(b"\0\4" + (self.block & 0xFFFF).to_bytes(2, "big"), self.peer)
        if len(payload) < self.blksize:
            self.done.set_result(self.received)


async def tftp(machine: Machine, server: str, name: str) -> int:
    """RRQ with blksize and tsize, then DATA/ACK in lock step; returns the bytes received."""
    _, blksize = ARCH[machine.firmware]

    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((machine.ip, 0))
        s.setblocking(False)
        return s

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    rrq = b"\0\1" + name.encode() + b"\0octet\0blksize\0" + str(blksize).encode() + b"\0tsize\0" + b"0\0"
    sock = in_netns(machine.netns, make)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _TftpTransfer(machine, sock, server, rrq, blksize, done), sock=sock)
    try:
        return await done
    finally:
        transport.close()


# -- HTTP -----------------------------------------------------------------------------------------------
async def http(machine: Machine, url: str, step: str, method: str = "GET", body: bytes = b"",
               headers: dict | None = None, pool: Pooled | None = None) -> tuple[int, bytes]:
    """One request (retried as above) on a connection of its own, or on `pool`'s."""
    m = re.match(r"http://([^/:]+)(?::(\d+))?(/.*)?$", url)
    host, port, path = m[1], int(m[2] or 80), m[3] or "/"
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    connection = "keep-alive" if pool is not None else "close"
    raw = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n"
           f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body
    for attempt in range(HTTP_TRIES):
        if attempt:
            machine.retry(step)
        try:
            return await asyncio.wait_for(_http_once(machine, host, port, raw, pool), HTTP_TIMEOUT)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
            last = exc
    raise StepFailed(f"{step}: {type(last).__name__} {last}")


async def _http_once(machine: Machine, host: str, port: int, raw: bytes, pool: Pooled | None) -> tuple[int, bytes]:
    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((machine.ip, 0))
        s.setblocking(False)
        return s

    return await exchange(lambda: in_netns(machine.netns, make), (host, port), raw, pool)


# -- the whole boot -----------------------------------------------------------------------------------
def credential_of(config: bytes) -> str:
    files = json.loads(config).get("storage", {}).get("files", [])
    source = next(f["contents"]["source"] for f in files if f.get("path") == CREDENTIAL_PATH)
    return source.split(",", 1)[1]


async def timed(machine: Machine, step: str, coro):
    started = time.monotonic()
    result = await coro
    machine.steps[step] = time.monotonic() - started
    return result


async def boot(machine: Machine, appliance: str, began: float) -> Machine:
    hyphen = machine.mac.replace(":", "-")
    try:
        bootfile = await timed(machine, "pxe-dhcp", proxy_dhcp(machine, False, "pxe-dhcp"))
        await timed(machine, "tftp", tftp(machine, appliance, bootfile))
        script_url = await timed(machine, "ipxe-dhcp", proxy_dhcp(machine, True, "ipxe-dhcp"))
        ipxe = Pooled()
        try:
            kernel_line = await _ipxe_scripts_and_images(machine, script_url, hyphen, ipxe)
        finally:
            ipxe.close()  # the kernel starts: iPXE and its connection are gone
        base = script_url.rsplit("/", 1)[0]
        config_url = re.search(r"ignition\.config\.url=(\S+)", kernel_line)[1].replace("${mac:hexhyp}", hyphen)
        status, config = await timed(machine, "ignition", http(machine, config_url, "ignition"))
        if status != 200:
            raise StepFailed(f"ignition: HTTP {status}: {config[:200]!r}")
        machine.install_config_at = time.monotonic() - began
        body = json.dumps({"mac": machine.mac, "phase": "installed", "message": "bench"}).encode()
        status, answer = await timed(machine, "installed", http(
            machine, f"{base}/events", "installed", "POST", body,
            {"Authorization": f"Bearer {credential_of(config)}", "Content-Type": "application/json"}))
        if status != 200:
            raise StepFailed(f"installed: HTTP {status}: {answer[:200]!r}")
        machine.done_at = time.monotonic() - began
    except (StepFailed, OSError, KeyError, StopIteration, ValueError, TypeError) as exc:
        machine.error = f"{type(exc).__name__}: {exc}"[:300]
    return machine


async def _ipxe_scripts_and_images(machine: Machine, script_url: str, hyphen: str, pool: Pooled) -> str:
    """What iPXE fetches over its pooled connection; returns the script's kernel line."""
    await timed(machine, "boot.ipxe", http(machine, script_url, "boot.ipxe", pool=pool))
    base = script_url.rsplit("/", 1)[0]
    status, script = await timed(machine, "ipxe", http(machine, f"{base}/ipxe?mac={hyphen}&arch=x86_64", "ipxe",
                                                       pool=pool))
    if status != 200 or b"\nkernel " not in script:
        raise StepFailed(f"ipxe: HTTP {status}: {script[:200]!r}")
    kernel_line = next(line for line in script.decode().splitlines() if line.startswith("kernel "))
    initrds = [line.split()[1] for line in script.decode().splitlines() if line.startswith("initrd ")]
    await timed(machine, "kernel", _asset(machine, urljoin(script_url, kernel_line.split()[1]), "kernel", pool))
    await timed(machine, "initrd", _asset(machine, urljoin(script_url, initrds[0]), "initrd", pool))
    return kernel_line


async def _asset(machine: Machine, url: str, step: str, pool: Pooled) -> None:
    status, _ = await http(machine, url, step, pool=pool)
    if status != 200:
        raise StepFailed(f"{step}: HTTP {status} for {url}")
