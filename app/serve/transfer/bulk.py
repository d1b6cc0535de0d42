"""Large file bodies (kernels, initrds, images, registry blobs) go out from threads of their own, one
body at a time on each, in a single blocking sendfile, instead of from the loop that answers the
boot API.

Why: sendfile's kernel time (handing page-cache pages to the socket, segmenting, and over loopback
the receiver's processing too) is paid by the thread that calls it. On the API's loop every chunk of
every download would be a callback that `/ipxe` and `/ignition` queue behind; here that loop does
none of it, and one blocking sendfile per body comes back to Python once instead of once per chunk.
A thread per body rather than a second event loop: a loop would take the GIL back for every chunk.
(docs/architecture.md, "Sending files"; the figures are in bench/results.json.)

Safety: the transfer runs on its own duplicate of the connection's descriptor. A client that goes
away mid-transfer gets its connection closed by the API's loop, and that descriptor number may at
once be reused for another machine's connection; the duplicate still names the old socket, so the
transfer can only fail on it (EPIPE), never write into the new one. The file is duplicated likewise.
The socket is blocking, with a send timeout, only while the API's loop leaves it alone: reading is
paused and nothing else is written until the body is out; it is non-blocking again before that.
"""

from __future__ import annotations

import asyncio
import errno
import os
import queue
import socket
import struct
import threading
from typing import BinaryIO

THRESHOLD = 1 << 20  # smaller bodies go out on the API's loop: a thread costs more than it saves
# A client that takes nothing for this long is gone. The kernel's send timeout counts from the last
# progress of each chunk it waits on, so a stalled transfer ends 2-4 times this after its last byte.
STALL_SECONDS = 20
# At most this many bodies on threads at once (each holds a thread and two descriptors); more go out
# from the API's loop, slower for the API but never refused.
MAX_THREADS = 256
_threads = threading.BoundedSemaphore(MAX_THREADS)
IDLE_SECONDS = 60  # a thread with no body to send for this long ends


async def sendfile(transport: asyncio.Transport, f: BinaryIO, offset: int, count: int) -> None:
    """Send `count` bytes of `f` from `offset` on the connection, after what the transport already
    holds (the response's headers). Raises ConnectionError when the client goes away or stalls."""
    await _drained(transport)
    raw = transport.get_extra_info("socket")
    if raw is None:
        raise ConnectionResetError("client went away")
    transfer = _Transfer.start(raw, f, offset, count) if _threads.acquire(blocking=False) else None
    if transfer is None:  # no thread or descriptor to be had: from the loop, as before
        await asyncio.get_running_loop().sendfile(transport, f, offset, count)
        return
    reading = transport.is_reading()
    transport.pause_reading()  # as asyncio's own sendfile does: no next request mid-body
    try:
        await transfer.done
    except asyncio.CancelledError:
        transfer.interrupt()  # serve is stopping: the blocked sendfile returns, the thread closes
        raise
    finally:
        if reading and not transport.is_closing():
            transport.resume_reading()


class _Transfer:
    """One body on a thread of its own, on duplicates of the connection and of the file."""

    def __init__(self, sock: socket.socket, file: BinaryIO, offset: int, count: int) -> None:
        self.sock, self.file, self.offset, self.count = sock, file, offset, count
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future = self.loop.create_future()
        self._closing = threading.Lock()  # the thread's close and an interrupt never cross

    @classmethod
    def start(cls, raw, f: BinaryIO, offset: int, count: int) -> _Transfer | None:
        """The transfer under way, or None (its thread slot given back) when a descriptor or a
        thread cannot be had: a pids limit, a full descriptor table."""
        sock = file = None
        try:
            sock = socket.socket(fileno=os.dup(raw.fileno()))
            file = os.fdopen(os.dup(f.fileno()), "rb")
            transfer = cls(sock, file, offset, count)
            _workers.run(transfer._run)
            return transfer
        except (OSError, RuntimeError):
            for held in (sock, file):
                if held is not None:
                    held.close()
            _threads.release()
            return None

    def _run(self) -> None:
        """On its own thread: the whole body in as few sendfile calls as the client allows."""
        error: BaseException | None = None
        try:
            self._send()
        except OSError as exc:
            stalled = exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
            error = ConnectionResetError(f"client took nothing for {STALL_SECONDS} s" if stalled else str(exc))
        finally:
            with self._closing:
                self.sock.close()
            self.file.close()
            _threads.release()
        try:
            self.loop.call_soon_threadsafe(_settle, self.done, error)
        except RuntimeError:
            pass  # the caller's loop has closed (serve is gone): nobody to tell

    def _send(self) -> None:
        sock, offset, count = self.sock, self.offset, self.count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", STALL_SECONDS, 0))
        sock.setblocking(True)
        try:
            while count > 0:
                sent = os.sendfile(sock.fileno(), self.file.fileno(), offset, count)
                if sent == 0:
                    raise ConnectionResetError("the file ended before the body did")
                offset, count = offset + sent, count - sent
        finally:
            sock.setblocking(False)  # before the API's loop may touch the connection again
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 0))

    def interrupt(self) -> None:
        with self._closing:  # once the thread has closed it, its number may name another socket
            if self.sock.fileno() != -1:
                self.sock.shutdown(socket.SHUT_RDWR)


class _Workers:
    """The threads bodies go out on. A thread outlives its body and waits IDLE_SECONDS for the next:
    a rack booting at once would otherwise start a thread per kernel and per initrd, and
    Thread.start blocks the API's loop until the new thread has run, which on a busy machine is a
    wait every request shares; a thread also lowers its priority once, not once per body."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.idle = 0  # threads waiting for a job and not yet counted out by `run`

    def run(self, job) -> None:
        """`job` on an idle thread, else on a new one; RuntimeError when none can be started."""
        with self.lock:
            if self.idle:
                self.idle -= 1
                self.jobs.put(job)
                return
        threading.Thread(target=self._work, args=(job,), name="bulk-sendfile", daemon=True).start()

    def _work(self, job) -> None:
        _yield_to_the_api()
        me = threading.current_thread()
        while True:
            job()
            me.name = "bulk-idle"
            with self.lock:
                self.idle += 1
            try:
                job = self.jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self.lock:  # a job handed to this thread as it timed out is still taken
                    try:
                        job = self.jobs.get_nowait()
                    except queue.Empty:
                        self.idle -= 1
                        return
            me.name = "bulk-sendfile"


_workers = _Workers()


def _yield_to_the_api() -> None:
    """The lowest CPU priority for this thread (Linux: per thread). Where the bodies are bound by CPU
    rather than by the link (loopback, a fast NIC on a small box), 64 busy transfer threads would
    otherwise take turns with the API's one thread as equals and starve it; at nice 19 they take
    what the API leaves. Where the link is the limit they sleep in the kernel and it changes nothing."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (OSError, AttributeError):
        pass  # not Linux, or not allowed: the transfer goes on at the process's priority


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
        if transport.is_closing() or waited > STALL_SECONDS:
            raise ConnectionResetError("client went away")
        await asyncio.sleep(0.005)
        waited += 0.005
