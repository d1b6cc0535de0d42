"""An HTTP/1.1 response as the simulated machines of the boot storm read it (bench/firmware.py)."""

from __future__ import annotations

import asyncio
import re
import socket

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
