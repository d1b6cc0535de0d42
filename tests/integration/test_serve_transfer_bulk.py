"""Large bodies go out from threads of their own (app/serve/bulk.py), never from the API's loop: byte-exact,
whole and ranged, many at once, the connection reusable afterwards, and no descriptor left behind by
a client that goes away or by a server that stops mid-transfer."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import threading

import pytest

from app.serve.transfer import bulk
from tests.support.serve import running

SIZE = 3 * bulk.THRESHOLD + 12345  # not a multiple of anything the kernel or asyncio chunks by
PATH = "/assets/flatcar/flatcar_production_pxe_image.cpio.gz"
# More than every socket buffer between server and client holds: a client that stops reading stops it.
HUGE = "/assets/flatcar/flatcar_production_image.raw"


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "assets" / "flatcar").mkdir(parents=True)
    (tmp_path / "assets" / "flatcar" / "small.txt").write_bytes(b"s" * 100)
    (tmp_path / "matchbox").mkdir()
    data = random.Random(7).randbytes(SIZE)
    (tmp_path / "assets" / PATH.removeprefix("/assets/")).write_bytes(data)
    with open(tmp_path / "assets" / HUGE.removeprefix("/assets/"), "wb") as huge:
        huge.truncate(512 << 20)  # sparse: no disk, and sendfile sends its zeros
    return tmp_path, data


def open_descriptors() -> int:
    """Sockets and files open in this process: what a transfer holds (its duplicates included)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue  # the listing's own descriptor, closed by now
    return sum(t.startswith("socket:") or t.startswith("/") and not t.startswith("/dev/") for t in targets)


def transfers() -> int:
    return sum(t.name == "bulk-sendfile" for t in threading.enumerate())


async def settle(condition, seconds: float = 10.0) -> bool:
    """Poll `condition` until it holds (closing happens on the transfer's thread, a moment later)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def test_large_bodies_never_go_out_from_the_api_loop(tree, monkeypatch):
    root, data = tree
    loop = asyncio.get_running_loop()
    on_api_loop: list[int] = []
    original = loop.sendfile

    async def watched(transport, file, offset=0, count=None, **kw):
        on_api_loop.append(count)
        return await original(transport, file, offset, count, **kw)
    monkeypatch.setattr(loop, "sendfile", watched)
    async with running(root / "matchbox", root, assets=root / "assets") as (http, _):
        async def get(headers=None):
            async with http.get(PATH, headers=headers or {}) as r:
                return r.status, await r.read()
        whole = await asyncio.gather(*(get() for _ in range(8)))
        ranged = await get({"Range": f"bytes={bulk.THRESHOLD - 5}-{SIZE - 2}"})
        async with http.get("/assets/flatcar/small.txt") as r:
            assert await r.read() == b"s" * 100
    assert all(status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
               for status, body in whole)
    assert ranged == (206, data[bulk.THRESHOLD - 5:SIZE - 1])
    assert on_api_loop == [100]  # only the small file went out from the API's loop


async def test_the_connection_serves_the_next_request_after_a_large_body(tree):
    root, data = tree
    async with running(root / "matchbox", root, assets=root / "assets") as (http, _):
        reader, writer = await asyncio.open_connection(http._base_url.host, http._base_url.port)
        request = f"GET {PATH} HTTP/1.1\r\nHost: x\r\n\r\nGET /assets/flatcar/small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        writer.write(request.encode())  # pipelined: the second waits until the body is out
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"Content-Length: {SIZE}".encode() in head
        assert await reader.readexactly(SIZE) == data
        second = await reader.readuntil(b"\r\n\r\n")
        assert second.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(100) == b"s" * 100
        writer.close()


async def test_clients_that_go_away_mid_body_leave_no_descriptor_behind(tree):
    root, data = tree
    async with running(root / "matchbox", root, assets=root / "assets") as (http, _):
        async with http.get(PATH) as r:  # the session holds its connection from here on
            await r.read()
        before = open_descriptors()
        for _ in range(20):
            reader, writer = await asyncio.open_connection(http._base_url.host, http._base_url.port)
            writer.write(f"GET {HUGE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await reader.read(65536)
            writer.transport.abort()  # RST mid-body
        assert await settle(lambda: open_descriptors() <= before), (open_descriptors(), before)
        async with http.get(PATH) as r:
            assert await r.read() == data  # and the next machine is served as before


async def test_a_server_stopping_mid_body_stops_the_transfer_and_closes_its_descriptors(tree):
    root, _ = tree
    before = open_descriptors()
    async with running(root / "matchbox", root, assets=root / "assets", shutdown_timeout=0.5) as (http, _):
        reader, writer = await asyncio.open_connection(http._base_url.host, http._base_url.port)
        writer.transport.pause_reading()  # a client that never reads: the body cannot finish
        writer.write(f"GET {HUGE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await asyncio.sleep(0.2)
    # The server has gone, our client is still connected: only its own socket may remain.
    try:
        assert await settle(lambda: open_descriptors() <= before + 1), (open_descriptors(), before)
    finally:
        writer.transport.abort()


async def test_a_client_that_stops_reading_is_let_go_after_the_stall_timeout(tree, monkeypatch):
    root, _ = tree
    monkeypatch.setattr(bulk, "STALL_SECONDS", 1)
    async with running(root / "matchbox", root, assets=root / "assets") as (http, ctx):
        before = open_descriptors()
        reader, writer = await asyncio.open_connection(http._base_url.host, http._base_url.port)
        writer.transport.pause_reading()  # connected, never reading again
        writer.write(f"GET {HUGE} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        try:
            assert await settle(lambda: transfers() == 1)
            # The transfer gives up (the kernel's send timeout, a few times over) and closes its
            # duplicates; what remains is the connection, our end and the server's.
            assert await settle(lambda: transfers() == 0, seconds=30)
            assert await settle(lambda: open_descriptors() <= before + 2), (open_descriptors(), before)
        finally:
            writer.transport.abort()
    from app.events import read_events
    assert any(e.detail.get("aborted") for e in read_events(root / "events.jsonl"))


@pytest.mark.parametrize("shortage", ["threads", "thread start"])
async def test_without_a_thread_to_spare_the_body_goes_out_from_the_loop_as_before(tree, monkeypatch, shortage):
    root, data = tree
    if shortage == "threads":
        monkeypatch.setattr(bulk, "_threads", threading.BoundedSemaphore(1))
        bulk._threads.acquire()  # every slot taken
    else:
        def refuse(self):
            raise RuntimeError("can't start new thread")
        monkeypatch.setattr(bulk, "_workers", bulk._Workers())  # no idle thread left by other tests
        monkeypatch.setattr(threading.Thread, "start", refuse)
    loop, on_api_loop = asyncio.get_running_loop(), []
    original = loop.sendfile

    async def watched(transport, file, offset=0, count=None, **kw):
        on_api_loop.append(count)
        return await original(transport, file, offset, count, **kw)
    monkeypatch.setattr(loop, "sendfile", watched)
    before = open_descriptors()
    async with running(root / "matchbox", root, assets=root / "assets") as (http, _):
        async with http.get(PATH) as r:
            assert r.status == 200 and await r.read() == data
    assert on_api_loop == [SIZE]
    assert await settle(lambda: open_descriptors() <= before), (open_descriptors(), before)


async def test_bodies_one_after_another_go_out_on_the_same_thread(tree, monkeypatch):
    root, data = tree
    monkeypatch.setattr(bulk, "_workers", bulk._Workers())
    started = []
    original = threading.Thread.start

    def counted(self):
        started.append(self.name)
        return original(self)
    monkeypatch.setattr(threading.Thread, "start", counted)
    async with running(root / "matchbox", root, assets=root / "assets") as (http, _):
        for _ in range(5):
            async with http.get(PATH) as r:
                assert r.status == 200 and await r.read() == data
            assert await settle(lambda: bulk._workers.idle == 1)  # its thread waits for the next
    assert started.count("bulk-sendfile") == 1


def test_a_thread_that_has_timed_out_is_handed_no_body(monkeypatch):
    monkeypatch.setattr(bulk, "IDLE_SECONDS", 0.01)
    workers, done, first = bulk._Workers(), [], []
    workers.run(lambda: (first.append(threading.current_thread()), done.append(1)))
    for _ in range(500):  # until that thread has waited its idle time out and ended
        if first and not first[0].is_alive():
            break
        threading.Event().wait(0.01)
    assert workers.idle == 0
    workers.run(lambda: done.append(2))  # so on a thread of its own, not into a queue nobody reads
    for _ in range(500):
        if len(done) == 2:
            break
        threading.Event().wait(0.01)
    assert done == [1, 2]


class FakeTransport:
    def __init__(self, pending: list[int], closing: bool = False):
        self.pending, self.closing = pending, closing

    def get_write_buffer_size(self) -> int:
        return self.pending.pop(0) if len(self.pending) > 1 else self.pending[0]

    def is_closing(self) -> bool:
        return self.closing


async def test_the_body_waits_for_the_headers_and_gives_up_on_a_closed_connection():
    await asyncio.wait_for(bulk._drained(FakeTransport([120, 120, 0])), 5)  # returns once drained
    with pytest.raises(ConnectionResetError):
        await bulk._drained(FakeTransport([120], closing=True))
