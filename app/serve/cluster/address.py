"""The service address: the one address the nodes use (bootstrap.ip), held by whichever replica leads,
as keepalived and kube-vip's ARP mode do it.

The leader runs `python -m app.serve.cluster.address IFACE ADDR/PREFIX` under serve's guardian
(supervise/guardian.py). This small process adds the address to the interface, announces it with
gratuitous ARP (so that every machine on the LAN moves its ARP entry to this host at once, instead of
sending to the old leader until the entry goes stale), prints HELD and waits. On SIGTERM — the leader
stepping down, or the guardian seeing serve die, even by SIGKILL — it removes the address. A host that
dies takes the address with it. So the address is held only while a serve that leads is alive.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

HELD = "held"  # the line the holder prints once the address is up and announced
ANNOUNCEMENTS = 3  # gratuitous ARPs sent, RETRY_SECONDS apart: one may be lost on a busy LAN
RETRY_SECONDS = 0.5
ETH_P_ARP = 0x0806
SIOCGIFADDR = 0x8915  # linux/sockios.h


def parse(text: str) -> ipaddress.IPv4Interface:
    """ADDR or ADDR/PREFIX (default /32, as kube-vip adds it); ValueError saying what is wrong."""
    try:
        value = ipaddress.ip_interface(text if "/" in text else f"{text}/32")
    except ValueError:
        raise ValueError(f"{text!r} is not an address (like 10.0.0.2 or 10.0.0.2/24)") from None
    if not isinstance(value, ipaddress.IPv4Interface):
        raise ValueError(f"{text}: IPv6 service addresses are not supported (they need unsolicited "
                         "neighbour advertisements, not ARP)")
    return value


def interface_mac(interface: str) -> bytes:
    text = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    return bytes.fromhex(text.replace(":", ""))


def garp_frame(mac: bytes, address: ipaddress.IPv4Address) -> bytes:
    """A gratuitous ARP request: 'who has ADDR? tell ADDR', from our MAC to everyone. Receivers that
    know ADDR update its entry to our MAC (Linux does so even with arp_accept=0)."""
    ip = address.packed
    ethernet = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + ip + b"\x00" * 6 + ip
    return ethernet + arp


def announce(interface: str, address: ipaddress.IPv4Address) -> None:
    frame = garp_frame(interface_mac(interface), address)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as raw:
        raw.bind((interface, ETH_P_ARP))
        raw.send(frame)


def own_address(interface: str) -> str | None:
    """The interface's primary IPv4 address (SIOCGIFADDR), None without one. The service address
    is added as a secondary one, so this is the replica's own."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def main(argv: list[str]) -> int:
    interface, value = argv[0], parse(argv[1])
    # Signals are blocked and taken with sigwait: one that arrives at any moment is never missed.
    stops = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    added = ip("addr", "replace", str(value), "dev", interface)
    if added.returncode != 0:
        print(f"cannot add {value} to {interface}: {added.stderr.strip()}", file=sys.stderr, flush=True)
        return 1
    try:
        announce(interface, value.ip)
        print(HELD, flush=True)
        for _ in range(ANNOUNCEMENTS - 1):
            if signal.sigtimedwait(stops, RETRY_SECONDS) is not None:
                return 0
            announce(interface, value.ip)
        signal.sigwait(stops)
    finally:
        removed = ip("addr", "del", str(value), "dev", interface)
        if removed.returncode != 0:
            print(f"cannot remove {value} from {interface}: {removed.stderr.strip()}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


class Holder:
    """serve's side: start the holder (`command` runs this module, under the guardian), wait until it
    holds the address, stop it (which removes the address) and wait until it has."""

    def __init__(self, command: list[str], env: dict[str, str], start_timeout: float = 15.0):
        self.command, self.env, self.start_timeout = command, env, start_timeout
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=self.env)
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), self.start_timeout)
        except TimeoutError:
            line = b""
        if line.decode().strip() != HELD:
            process = self.process
            await self.stop()
            err = (await process.stderr.read()).decode(errors="replace").strip()
            raise OSError(f"the service address holder failed: {err or 'no answer'}")

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        await process.wait()  # the guardian stops the holder, which removes the address, then exits
