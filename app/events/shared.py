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
  forgets its replay and reads the new file, whose first lines hold every node's state;
- `reinstall` and `wait` take the same lock for their one line (events.log.append_event);
- an event that could not be written (a full disk) makes the decision void: `saved()` is False and
  serve answers 503 rather than act on what the other workers cannot know.

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
from app.events.log import WORKERS_LOCK
from app.layout import RUN


class SharedEventLog(EventLog):
    def __init__(self, output: Path, known=None, max_bytes: int = MAX_BYTES):
        # The log itself is replaced on compaction; the lock file never is.
        self._lock_path = output / RUN / WORKERS_LOCK
        self._lock_fd: int | None = None
        self._depth = 0  # transactions nest (record inside a decision): only the outer one locks
        self._unsaved = False  # an event of the current transaction did not reach the file
        super().__init__(output, known, max_bytes)

    def open(self) -> None:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        with self.transaction():
            caught_up = self._followed
            super().open()
            self._followed = caught_up  # not the end of the file: a line still being written is not passed by

    def close(self) -> None:
        with self._lock:  # the periodic follow may be running in a thread
            super().close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def saved(self) -> bool:
        """Whether every event recorded in this transaction is in the file. When one is not, the
        other workers do not know of it, so the caller must not act on the decision (serve answers
        503): with several workers the file is the only state they share."""
        return not self._unsaved

    @contextmanager
    def transaction(self) -> Iterator[EventLog]:
        with self._lock:
            outer = self._depth == 0 and self._lock_fd is not None
            if outer:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                if outer:
                    self._unsaved = False
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
            failures = self.write_failures
            super().record(event)
            self._unsaved = self._unsaved or self.write_failures != failures
            return event

    def _catch_up(self) -> None:
        """Apply what others appended; after a compaction by another worker, write to the new file."""
        if self._fd is not None:
            try:
                replaced = os.stat(self.path).st_ino != os.fstat(self._fd).st_ino
            except FileNotFoundError:
                replaced = True
            if replaced:
                self._open_for_append()
        EventLog.follow(self, external_only=False)

    def _append(self, data: bytes) -> int:
        end = super()._append(data)
        if end - len(data) == self._followed:
            self._followed = end  # nothing came between our catch-up and our line
        else:
            self._own_lines.add(end - len(data))  # a command-line line came between: pass ours by offset
        return end
