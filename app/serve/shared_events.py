"""The event log shared by several serve workers (`serve --workers N`): one file, every worker's
decisions made from every worker's events.

Install windows are decided from node states, and the states are the event log replayed
(events.py). With one process, deciding and recording are one step under a thread lock. With
several, each worker keeps its own replay, so a decision must first see what the others recorded:

- every decision, and every event recorded, runs under an exclusive `flock` of `run/events.lock`;
- holding it, the worker applies whatever was appended since its last look (other workers' lines,
  `reinstall` and `wait` from the command line), then decides, then appends its own lines;
- its own lines are not applied twice: a line appended right after the others' is passed over by
  advancing the read position; one with a command-line line between is remembered by its offset;
- a worker that finds the file compacted under it (another worker passed the size cap) reopens it,
  forgets its replay and reads the new file, whose first lines hold every node's state.

So "served once" holds across workers: the second worker to ask for a node's install config holds
the lock after the first recorded `install-ignition`, and sees it. The lock is held for a decision and
its rendering, never across an await.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.events import MAX_BYTES, EventLog
from app.layout import RUN

LOCK_FILE = "events.lock"  # under run/: the log itself is replaced on compaction, the lock file never


class SharedEventLog(EventLog):
    def __init__(self, output: Path, known=None, max_bytes: int = MAX_BYTES):
        self._lock_path = output / RUN / LOCK_FILE
        self._lock_fd: int | None = None
        self._depth = 0  # transactions nest (record inside a decision): only the outer one locks
        super().__init__(output, known, max_bytes)

    def open(self) -> None:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        with self.transaction():
            super().open()

    def close(self) -> None:
        super().close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextmanager
    def transaction(self) -> Iterator[EventLog]:
        with self._lock:
            outer = self._depth == 0 and self._lock_fd is not None
            if outer:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                if outer:
                    self._catch_up()
                yield self
            finally:
                self._depth -= 1
                if outer:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def follow(self, external_only: bool = True) -> int:
        """Every line, whoever wrote it: the other workers' decisions are this worker's state too."""
        if self._lock_fd is None:  # before serving (the replay at start): nobody to lock out yet
            return super().follow(external_only=False)
        with self.transaction():
            return 0  # the transaction caught up

    def record(self, event):
        with self.transaction():
            return super().record(event)

    def _catch_up(self) -> None:
        """Apply what others appended; after a compaction by another worker, write to the new file."""
        if self._fd is not None:
            try:
                replaced = os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
            except FileNotFoundError:
                replaced = True
            if replaced:
                os.close(self._fd)
                self._open_for_append()
        EventLog.follow(self, external_only=False)

    def _append(self, data: bytes) -> int:
        end = super()._append(data)
        if end - len(data) == self._followed:
            self._followed = end  # nothing came between our catch-up and our line
        else:
            self._own_lines.add(end - len(data))  # a command-line line came between: pass ours by offset
        return end
