"""An HTTP/1.1 response as the simulated machines of the boot storm read it (bench/firmware.py)."""

from __future__ import annotations

import asyncio
import re

_RECEIVE = memoryview(bytearray(1 << 20))  # one loop, one reader at a time: shared by all responses
KEEP_BODY = 1 << 20  # scripts and configs are kept; an image's bytes are only counted


class Response(asyncio.BufferedProtocol):
    """One HTTP/1.1 response with a Content-Length, read straight into a shared buffer (the kernel's
    copy is the only one: a thousand machines' images must not cost the simulator a copy into a
    stream's buffer and another out of it). Resolves `done` with (status, body); an image's body is
    counted, not kept."""

    def __init__(self, done: asyncio.Future) -> None:
        self.done = done
        self.head = b""
        self.status = self.length = -1
        self.got = 0
        self.kept: list[bytes] = []

    def get_buffer(self, sizehint: int) -> memoryview:
        return _RECEIVE

    def buffer_updated(self, nbytes: int) -> None:
        self.received(_RECEIVE[:nbytes])

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
            self.length = int(re.search(rb"(?i)content-length:\s*(\d+)", head)[1])
        self.got += len(data)
        if self.length <= KEEP_BODY:
            self.kept.append(bytes(data))
        if self.got >= self.length:
            self.done.set_result((self.status, b"".join(self.kept)[:self.length]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or asyncio.IncompleteReadError(b"", max(self.length - self.got, 0)))
