"""app/serve/guard: the throttle, asyncio's quieted error reports, and the aiohttp internals the
connection caps rely on (checked here so that an aiohttp upgrade that moves them fails a test, not
a site)."""

from __future__ import annotations

import asyncio
import inspect
import logging

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from app.serve.guard import limits
from app.serve.guard.quiet import QUIET_SECONDS, quiet_exception_handler
from app.serve.guard.throttle import Throttle


def test_a_key_never_seen_is_allowed_whatever_the_clock_reads():
    throttle = Throttle(60.0)
    assert throttle.allow(("a",), 0.0)  # a monotonic clock just after boot
    assert throttle.allow(("b",), -5.0)
    assert not throttle.allow(("a",), 59.9)
    assert throttle.allow(("a",), 60.0)


def test_keys_are_bounded_and_the_oldest_forgotten():
    throttle = Throttle(60.0, max_keys=2)
    for key in ("a", "b", "c"):
        assert throttle.allow((key,), 1.0)
    assert throttle.allow(("a",), 2.0)  # forgotten, so allowed again within the period
    assert not throttle.allow(("c",), 2.0)


def test_asyncio_reports_are_said_once_a_period_with_how_many_were_not(caplog):
    loop = asyncio.new_event_loop()
    now = [0.0]
    try:
        quiet_exception_handler(loop, clock=lambda: now[0])
        with caplog.at_level(logging.WARNING, logger="bootstrap_node.limits"):
            for _ in range(4):
                loop.call_exception_handler({"message": "accept failed"})
            now[0] = QUIET_SECONDS
            loop.call_exception_handler({"message": "accept failed"})
    finally:
        loop.close()
    assert [r.getMessage() for r in caplog.records] == ["accept failed", "accept failed (3 more like it)"]


def test_the_aiohttp_hooks_the_connection_caps_wrap_are_still_there():
    # guard/limits.py wraps these and reads RequestHandler._waiter (checked against aiohttp 3.14.5).
    assert list(inspect.signature(web.Server.connection_made).parameters) == ["self", "handler", "transport"]
    assert list(inspect.signature(web.Server.connection_lost).parameters) == ["self", "handler", "exc"]
    assert "_waiter" in RequestHandler.__slots__


async def test_an_idle_connection_is_seen_as_idle_through_the_handlers_waiter():
    async def answer(request: web.BaseRequest) -> web.Response:
        return web.Response(text="ok")

    server = web.Server(answer)
    listener = await asyncio.get_running_loop().create_server(server, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(5):
            while not server.connections or not limits._idle(server.connections[0]):
                await asyncio.sleep(0)  # the handler parks on its waiter once it has nothing to read
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
        listener.close()
        await server.shutdown(1)
