"""HTTP/1.1 as the simulated machines of the boot storm speak it (bench/firmware.py): one request and
its response on a new connection or on iPXE's pooled one."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable

_RECEIVE = memoryview(bytearray(1 << 20))  # one loop, one reader at a time: shared by all responses
KEEP_BODY = 1 << 20  # scripts and configs are kept; an image's bytes are only counted


class Response:
    """One HTTP/1.1 response with a Content-Length, read from a connected socket when it is readable
    (`readable`, for loop.add_reader). Resolves `done` with (status, body). A script's or config's
    body is kept; an image's is counted as TCP delivers it and dropped in the kernel (MSG_TRUNC):
    every byte still crosses the link and the TCP stack, but the simulator does not copy what a real
    machine would write to its own RAM, which is no cost of the appliance's."""

    def __init__(self, done: asyncio.Future) -> None:
        self.done = done
        self.head = b""
        self.status = self.length = -1
        self.got = 0
        self.kept: list[bytes] = []
        self.closes = True  # whether the server closes the connection after this response

    def readable(self, sock: socket.socket) -> None:
        if self.done.done():
            return
        try:
            if self.length > KEEP_BODY:
                n = sock.recv_into(_RECEIVE, min(len(_RECEIVE), self.length - self.got), socket.MSG_TRUNC)
            else:
                n = sock.recv_into(_RECEIVE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.done.set_exception(exc)
            return
        if n == 0:
            self.done.set_exception(asyncio.IncompleteReadError(b"", max(self.length - self.got, 0)))
            return
        self.received(_RECEIVE[:n])

    def received(self, data) -> None:
        if self.done.done():
            return
        if self.length < 0:
            self.head += bytes(data)
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                if len(self.head) > 65536:
                    self.done.set_exception(ValueError("no end of the response head in 64 KiB"))
                return
            head, data = self.head[:end + 4], self.head[end + 4:]
            self.status = int(head.split(b" ", 2)[1])
            self.closes = re.search(rb"(?im)^connection:\s*close\b", head) is not None
            length = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if length is None:
                self.done.set_exception(ValueError(f"no Content-Length in {head[:200]!r}"))
                return
            self.length = int(length[1])
        self.got += len(data)
        if self.length <= KEEP_BODY:
            self.kept.append(bytes(data))
        if self.got >= self.length:
            self.done.set_result((self.status, b"".join(self.kept)[:self.length]))


class Pooled:
    """iPXE's pooled HTTP connection (its pool.c): iPXE asks for keep-alive, and a response read to
    its end leaves the connection open for the next request to the same server, so boot.ipxe, the
    /ipxe script, the kernel and the initrd come over one connection unless the server closes it."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


async def exchange(open_socket: Callable[[], socket.socket], address: tuple[str, int], raw: bytes,
                   pool: Pooled | None) -> tuple[int, bytes]:
    """Send `raw` and read the response, on `pool`'s connection when it holds one, else on a new
    socket from open_socket(); a whole response the server does not close after goes back to `pool`."""
    loop = asyncio.get_running_loop()
    sock, keep = (pool.sock, False) if pool is not None else (None, False)
    if pool is not None:
        pool.sock = None  # taken; put back only after a whole response
    try:
        if sock is None:
            sock = open_socket()
            await loop.sock_connect(sock, address)
        await loop.sock_sendall(sock, raw)
        done = loop.create_future()
        response = Response(done)
        loop.add_reader(sock.fileno(), response.readable, sock)
        try:
            answer = await done
        finally:
            loop.remove_reader(sock.fileno())
        keep = pool is not None and not response.closes
        return answer
    finally:
        if keep:
            pool.sock = sock
        elif sock is not None:
            sock.close()
