"""Reading on in events.jsonl from where a reader stopped: the one follower every reader uses (the
event log's own replay, the other workers' catch-up, the status page's download facts, `init`'s
watch for installed nodes).

It keeps the file's identity (inode) and the offset read up to. It hands out whole lines only (a
line still being written waits for the next look), in blocks of at most FOLLOW_BLOCK bytes, so
memory stays bounded whatever the file's size. When the file under the name is another one (a
compaction replaced it) or shorter than the offset (cut by hand), reading starts over at its
beginning, and the reader is told first whether the new file is a compaction's (whose first lines
hold every node's state) or not (whose lines must not be taken for the whole truth).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from app.events.model import EventKind

FOLLOW_BLOCK = 1024 * 1024
COMPACTED_MARK = f'"kind":"{EventKind.LOG_COMPACTED.value}"'.encode()  # as Event.line() spells it


class Follower:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.inode = 0
        self.offset = 0  # bytes of the file already handed out

    def at_end_of(self, fd: int) -> None:
        """Start from the end of the file open as `fd` (a writer that applied everything up to it)."""
        st = os.fstat(fd)
        self.inode, self.offset = st.st_ino, st.st_size

    def skip_to_end(self) -> None:
        """Start from the end of the file as it is now (a reader that wants only what comes next)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        self.inode, self.offset = st.st_ino, st.st_size

    def blocks(self, on_new_file: Callable[[bool], None] | None = None) -> Iterator[tuple[int, bytes]]:
        """(offset, bytes) of the whole lines appended since the last call, offset advancing past
        each block as it is handed out. `on_new_file(compacted)` is called before reading a file
        that replaced the one read so far."""
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return
        with f:
            st = os.fstat(f.fileno())
            if st.st_ino != self.inode or st.st_size < self.offset:
                if on_new_file is not None and self.inode:
                    on_new_file(starts_compacted(f))
                self.inode, self.offset = st.st_ino, 0
            f.seek(self.offset)
            yield from self._complete_blocks(f)

    def lines(self, on_new_file: Callable[[bool], None] | None = None) -> Iterator[tuple[int, bytes]]:
        """(offset, line) of every whole line appended since the last call."""
        for at, block in self.blocks(on_new_file):
            for raw in block.splitlines(keepends=True):
                yield at, raw
                at += len(raw)

    def _complete_blocks(self, f: BinaryIO) -> Iterator[tuple[int, bytes]]:
        while True:
            data = f.read(FOLLOW_BLOCK)
            end = data.rfind(b"\n") + 1
            if end == 0:
                if len(data) < FOLLOW_BLOCK:
                    return
                end = len(data)  # no line is this long: garbage, skipped rather than waited on forever
            f.seek(end - len(data), os.SEEK_CUR)
            self.offset += end
            yield self.offset - end, data[:end]


def starts_compacted(f: BinaryIO) -> bool:
    """Whether the open file is a compaction's: its first line says so. Anything else (truncated or
    replaced by hand) is not taken for the truth: the states already known are kept."""
    f.seek(0)
    return COMPACTED_MARK in f.readline(4096)
