"""What keeps abuse cheap for the HTTP server (threat-model.md §5): idle and trickling connections
are closed, connections are capped, and running out of file descriptors is one log line a while,
not a storm.

- aiohttp starts its keep-alive timer when a connection opens and closes it if no complete request
  arrived in time, so `IDLE_SECONDS` bounds both an idle keep-alive and a slowloris's headers.
- One address may hold at most `PER_ADDRESS` connections: more are closed at once. Over the total cap,
  the oldest *idle* connection is closed to make room (a node's request always gets in; a flood of
  idle sockets only evicts itself). Both are counted in /metrics.
- The soft RLIMIT_NOFILE is raised to the hard limit, and the cap stays below it.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time

from aiohttp import web

log = logging.getLogger("bootstrap_node.limits")
IDLE_SECONDS = 15.0  # no complete request within this on a (new or kept-alive) connection: closed
MAX_CONNECTIONS = 4096
PER_ADDRESS = 64
RESERVED_FDS = 128  # for files being sent, the event log, dnsmasq's pipes
QUIET_SECONDS = 10.0


def raise_nofile() -> int:
    """Raise the soft open-files limit to the hard one; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(requested: int, nofile: int) -> int:
    return max(16, min(requested, nofile - RESERVED_FDS))


def cap_connections(server: web.Server, cap: int, on_refused, per_address: int = PER_ADDRESS) -> None:
    """Enforce the per-address and total caps as each connection is accepted."""
    accept, lose = server.connection_made, server.connection_lost
    by_address: dict[str, int] = {}
    peer_of: dict[int, str] = {}  # id(handler) -> its address, remembered until the connection is lost

    def capped(handler, transport) -> None:
        accept(handler, transport)
        address = peer_of[id(handler)] = _peer(transport)
        by_address[address] = by_address.get(address, 0) + 1
        if by_address[address] > per_address:
            on_refused()
            transport.close()
        elif len(server.connections) > cap:
            on_refused()
            victim = next((h for h in server.connections if _idle(h) and h is not handler), None)
            (victim.transport if victim is not None and victim.transport else transport).close()

    def lost(handler, exc) -> None:
        lose(handler, exc)
        address = peer_of.pop(id(handler), None)
        if address in by_address:
            by_address[address] -= 1
            if by_address[address] <= 0:
                del by_address[address]

    server.connection_made = capped
    server.connection_lost = lost


def _peer(transport) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else ""


def _idle(handler) -> bool:
    """Waiting for a request (aiohttp parks an idle handler on `_waiter`); never a download in flight."""
    waiter = getattr(handler, "_waiter", None)
    return waiter is not None and not waiter.done()


def quiet_exception_handler(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio reports every failed accept (EMFILE) and every aborted transport: say each kind once
    per QUIET_SECONDS, with how many were not said."""
    last: dict[str, float] = {}
    unsaid: dict[str, int] = {}

    def handle(loop, context) -> None:
        message = str(context.get("message", "error"))
        now = time.monotonic()
        if now - last.get(message, -QUIET_SECONDS) < QUIET_SECONDS:
            unsaid[message] = unsaid.get(message, 0) + 1
            return
        last[message] = now
        extra = f" ({unsaid.pop(message)} more like it)" if unsaid.get(message) else ""
        exc = context.get("exception")
        log.warning("%s%s%s", message, f": {exc}" if exc else "", extra)

    loop.set_exception_handler(handle)
