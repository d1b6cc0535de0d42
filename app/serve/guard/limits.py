"""Connection limits for the HTTP server (docs/security.md, "Abuse"): idle and trickling connections
are closed, and connections are capped per address and in total.

- aiohttp starts its keep-alive timer when a connection opens and closes it if no complete request
  arrived in time, so `Limits.idle_seconds` bounds both an idle keep-alive and a slowloris's headers.
- A request body (only callbacks read one) must arrive whole within as long again (`read_body`): a
  byte every few seconds is not a body. While a handler waits on one, its connection counts as idle.
- One address may hold at most `Limits.per_address` connections: more are closed at once. Over the total cap,
  the oldest *idle* connection is closed to make room (a node's request always gets in; a flood of
  idle sockets only evicts itself). Both are counted in /metrics.
- The soft RLIMIT_NOFILE is raised to the hard limit, and the cap stays below it.
"""

from __future__ import annotations

import asyncio
import resource

from aiohttp import web

from app.serve.settings import Limits

# aiohttp 3.14.5 is the version these hooks were checked against; tests/unit/test_serve_guard.py
# fails when aiohttp no longer has them (Server.connection_made/connection_lost, RequestHandler._waiter).
RESERVED_FDS = 128  # for files being sent, the event log, dnsmasq's pipes


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


def cap_connections(server: web.Server, cap: int, on_refused, per_address: int = Limits.per_address,
                    on_accepted=lambda transport: None) -> None:
    """Enforce the per-address and total caps as each connection is accepted, by wrapping the
    server's accept and loss hooks (aiohttp has no public hook for either); `on_accepted` sees each
    connection let in."""
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
            if victim is not None:
                on_accepted(transport)
        else:
            on_accepted(transport)

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
    """Waiting for a request (aiohttp parks an idle handler on its private `_waiter`, checked against
    aiohttp 3.14.5) or for a request's body; never a download in flight."""
    if handler in _waiting_on_body:
        return True
    waiter = getattr(handler, "_waiter", None)
    return waiter is not None and not waiter.done()


_waiting_on_body: set = set()  # the protocols of requests whose handler is reading their body


class BodyTooSlow(Exception):
    """The body did not arrive in time (or its connection was evicted meanwhile); the connection is closed."""


async def read_body(request: web.Request, seconds: float) -> bytes:
    """The request's body, whole within `seconds` of asking for it; else BodyTooSlow, with the
    connection closed (a slow body holds a connection and a handler: the red team exhausted every
    connection with bodies trickled a byte every 5 s)."""
    protocol = request.protocol
    _waiting_on_body.add(protocol)
    try:
        async with asyncio.timeout(seconds):
            return await request.read()
    except (TimeoutError, ConnectionError):  # too slow, or evicted for a newcomer while it waited
        if request.transport is not None:
            request.transport.close()
        raise BodyTooSlow from None
    finally:
        _waiting_on_body.discard(protocol)
