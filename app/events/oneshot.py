"""The event log from a process that is not serve: `reinstall` and `wait` append one line, `discover`
reads them all. Neither keeps node states (log.py does)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from app.events.log import WORKERS_LOCK
from app.events.model import Event
from app.layout import EVENTS, RUN


def append_event(output: Path, event: Event) -> None:
    """One event from another process (wait, reinstall): an O_APPEND write of one line, which
    interleaves safely with a running serve's own lines. Where serve runs several workers, under
    their lock (run/events.lock), so that no compaction can pass it by."""
    lock = _workers_lock(output)
    try:
        fd = os.open(output / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, event.line().encode())
        finally:
            os.close(fd)
    finally:
        if lock is not None:
            os.close(lock)  # closing the descriptor releases the flock


def _workers_lock(output: Path) -> int | None:
    try:
        fd = os.open(output / RUN / WORKERS_LOCK, os.O_RDWR)
    except OSError:
        return None  # one serve process, or none: nothing to take turns with
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def read_events(path: Path):
    """Every well-formed event in the file, streamed; a torn last line (a crash mid-write) is skipped."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                event = Event.from_json(line)
                if event is not None:
                    yield event
    except FileNotFoundError:
        return
