"""Large file bodies (kernels, initrds, images, registry blobs) go out from a thread of their own, with
its own event loop, instead of from the loop that answers the boot API.

Why: sendfile's kernel time (handing page-cache pages to the socket, segmenting, and over loopback
the receiver's processing too) is paid by the thread that calls it. On the API's loop, 64 downloads
made every `/ipxe` and `/ignition` wait behind their chunks: at 1,000 req/s the API's p50 was 15–90 ms
and its p99 116–500 ms (bench/streaming.py). On a thread of its own the kernel work runs beside the
API's loop (the GIL is released for the syscall); the API's loop keeps only the Python of answering.

Safety: the transfer runs on its own duplicate of the connection's descriptor. A client that goes
away mid-transfer gets its connection closed by the API's loop, and that descriptor number may at
once be reused for another machine's connection; the duplicate still names the old socket, so the
transfer can only fail on it (EPIPE), never write into the new one. The file is duplicated likewise.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import BinaryIO

THRESHOLD = 1 << 20  # smaller bodies go out on the API's loop: the hop costs more than it saves
DRAIN_SECONDS = 60.0  # headers still unsent after this long: the client is not reading


class BulkSender:
    """One thread, one event loop, started at the first large body and kept for the process's life
    (a daemon: it holds nothing that must be flushed, and every server in the process shares it)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def sendfile(self, transport: asyncio.Transport, f: BinaryIO, offset: int, count: int) -> None:
        """Send `count` bytes of `f` from `offset` on the connection, after what the transport
        already holds (the response's headers). Raises ConnectionError when the client goes away."""
        await _drained(transport)
        raw = transport.get_extra_info("socket")
        if raw is None:
            raise ConnectionResetError("client went away")
        sock = socket.socket(fileno=os.dup(raw.fileno()))
        try:
            sock.setblocking(False)
            file = os.fdopen(os.dup(f.fileno()), "rb")
        except BaseException:
            sock.close()
            raise
        reading = transport.is_reading()
        transport.pause_reading()  # as asyncio's own sendfile does: no next request mid-body
        try:
            await self._transfer(sock, file, offset, count)
        finally:
            if reading and not transport.is_closing():
                transport.resume_reading()

    async def _transfer(self, sock: socket.socket, file: BinaryIO, offset: int, count: int) -> None:
        """Run the transfer on the bulk loop, which owns both duplicates from here on and closes them
        when it is done with them, however it ends (a cancelled transfer included)."""
        here, bulk = asyncio.get_running_loop(), self._running()
        done: asyncio.Future = here.create_future()
        started: list[asyncio.Task] = []

        def start() -> None:  # on the bulk loop
            task = bulk.create_task(bulk.sock_sendfile(sock, file, offset, count))
            task.add_done_callback(lambda t: _finished(t, sock, file, here, done))
            started.append(task)

        bulk.call_soon_threadsafe(start)
        try:
            await done
        except asyncio.CancelledError:
            # Queued after start(), so it finds the task; stopping it closes the duplicates.
            bulk.call_soon_threadsafe(lambda: started[0].cancel())
            raise

    def _running(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="bulk-sendfile", daemon=True)
                self._thread.start()
            return self._loop


def _finished(task: asyncio.Task, sock: socket.socket, file: BinaryIO, caller: asyncio.AbstractEventLoop,
              done: asyncio.Future) -> None:
    """On the bulk loop, once the transfer has let go of the socket: close the duplicates, tell the caller."""
    sock.close()
    file.close()
    error = None if task.cancelled() else task.exception()
    try:
        caller.call_soon_threadsafe(_settle, done, error)
    except RuntimeError:
        pass  # the caller's loop has closed (serve is gone): nobody to tell


def _settle(done: asyncio.Future, error: BaseException | None) -> None:
    if done.done():
        return  # the caller was cancelled
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


async def _drained(transport: asyncio.Transport) -> None:
    """Wait until the transport has handed everything it holds to the kernel: the body must follow
    the headers. They are almost always sent at once; this waits only when the socket was full."""
    waited = 0.0
    while transport.get_write_buffer_size():
        if transport.is_closing() or waited > DRAIN_SECONDS:
            raise ConnectionResetError("client went away")
        await asyncio.sleep(0.005)
        waited += 0.005


SENDER = BulkSender()
