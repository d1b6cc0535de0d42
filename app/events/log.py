"""The event log (`events.jsonl`): appending, following, compacting, and the node states it replays to.

Events are the single record of progress: the status page, `status`, `discover`, the boot policy
(reinstall guard, install windows), `/metrics` and `wait` all read them. One JSON object per line,
so a restarted `serve` (or any reader) rebuilds every node's state, install windows included, by
replaying the file. Secrets never enter the log: credentials appear only as SHA-256 digests.

`EventLog` is the log of one serve process; `SharedEventLog` the same file shared by several workers
(`serve --workers N`) under the lock WORKERS_LOCK. Every reader reads on through one `Follower`.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.events.alerts import Alerts
from app.events.follower import Follower
from app.events.model import (
    ALERT,
    ALERT_SUMMARY,
    COMPACTED,
    EXTERNAL_SOURCES,
    Event,
    EventKind,
    NodeState,
    Phase,
    changes_state,
)
from app.layout import EVENTS, RUN

MAX_DISCOVERED = 256  # distinct unknown MACs kept for `discover` and the status page; more are not kept
MAX_ADDRESSES = 65536  # address -> MAC pairs remembered from PXE boots (download attribution)
MAX_BYTES = 64 * 1024 * 1024  # events.jsonl is compacted past this; events.jsonl.1 keeps the one before
WORKERS_LOCK = "events.lock"  # under run/: taken by every writer when serve runs several workers


class EventLog:
    """Append-only events.jsonl plus the live node states, safe from several threads.

    `known` gives MAC -> node name for the nodes being served; it is asked again on every use, so
    when serve's store reloads groups (a node added and generated while serving), the log knows the
    new node at once: one source of truth for which nodes exist.
    """

    def __init__(self, output: Path, known: Callable[[], dict[str, str]] | dict[str, str] | None = None,
                 max_bytes: int = MAX_BYTES, only_known: bool = False):
        self.path = output / EVENTS
        self.max_bytes = max_bytes
        # Node states only for the known nodes (serve): an event naming any other MAC, in the file or
        # recorded, changes no state. Anyone on the LAN can make up MACs; nodes are what cluster.yaml says.
        self.only_known = only_known
        self._size = 0  # bytes in the file we append to
        fixed = dict(known or {}) if not callable(known) else None
        self._known: Callable[[], dict[str, str]] = known if callable(known) else (lambda: fixed)
        self.nodes: dict[str, NodeState] = {}
        self.discovered: dict[str, str] = {}  # mac -> first seen
        self.alert_book = Alerts()
        # The book's containers under their older names (the status view and `wait` read them).
        self.alerts, self.recent_alerts = self.alert_book.counts, self.alert_book.recent
        self.alert_senders = self.alert_book.senders
        self.address_macs: OrderedDict[str, str] = OrderedDict()  # the address each node PXE-booted from
        self.write_failures = 0
        self._lock = threading.RLock()
        self._fd: int | None = None  # events.jsonl, opened for appending
        self.follower = Follower(self.path)
        self._own_lines: set[int] = set()  # offsets of lines of ours that follow() has yet to pass
        self.follow(external_only=False)

    @property
    def known(self) -> dict[str, str]:
        return self._known()

    @contextmanager
    def transaction(self) -> Iterator[EventLog]:
        """Decide from the states and record the decision's events as one step: two requests for the
        same node never both see its window unused. One process: a thread lock (asyncio handlers
        run one at a time anyway). Several workers share one log: see SharedEventLog."""
        with self._lock:
            yield self

    @contextmanager
    def reading(self) -> Iterator[EventLog]:
        """Hold the states still while another thread reads them (the status page is built off the
        event loop); unlike `transaction`, it never takes the workers' file lock."""
        with self._lock:
            yield self

    def saved(self) -> bool:
        """Whether the current transaction's events reached the file. One process keeps its state
        in memory, so a failed write (counted) changes no answer: always True here."""
        return True

    def mac_at(self, address: str) -> str:
        """The node that last PXE-booted from `address` ("" if none): its downloads are its own."""
        return self.address_macs.get(address, "")

    def follow(self, external_only: bool = True) -> int:
        """Apply lines appended since the last look, streaming (memory stays bounded whatever the
        file's size). A running serve calls this periodically and takes only other processes' events
        (its own are applied as it writes them); another process (`wait`) takes everything, and
        starts over when the file was compacted under it. Returns how many events were applied."""
        applied = 0

        def starting_over(compacted: bool) -> None:
            if compacted and not external_only:
                self._forget()  # compacted: its first lines hold every node's state
            self._own_lines.clear()

        # Under the lock: serve runs this in a thread, and a compaction on the event loop moves the
        # read position and the inode this reads and updates.
        with self._lock:
            for at, block in self.follower.blocks(starting_over):
                if external_only and not _may_be_external(block):
                    continue  # only serve's own lines: parsing a thousand a second of them stalled its loop
                for raw in block.splitlines(keepends=True):
                    start, at = at, at + len(raw)
                    if start in self._own_lines:
                        self._own_lines.discard(start)  # written and applied here already
                        continue
                    event = Event.from_json(raw.decode("utf-8", errors="replace"))
                    if event is not None and (not external_only or event.source in EXTERNAL_SOURCES):
                        self._apply(event)
                        applied += 1
        return applied

    def _forget(self) -> None:
        with self._lock:
            self.nodes.clear()
            self.discovered.clear()
            self.alert_book.clear()

    def open(self) -> None:
        self._open_for_append()
        followed = self.follower.offset
        self.follower.at_end_of(self._fd)
        if followed:  # replayed at start: a line written since is still to be read
            self.follower.offset = max(followed, self.follower.offset)

    def reopen(self) -> None:
        """Append to the file now at the path: a standby that takes over as leader (another process
        may have compacted the log since this one opened it). Reading on is `follow`'s."""
        with self._lock:
            self._open_for_append()

    def _open_for_append(self) -> None:
        """(Re)open events.jsonl for appending; the old descriptor is closed only once the new one
        is open, so a failure never leaves `_fd` naming a closed (and reusable) number."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        old, self._fd = self._fd, fd
        if old is not None:
            os.close(old)
        self._size = os.fstat(fd).st_size

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError:
                self.write_failures += 1
            os.close(self._fd)
            self._fd = None

    def record(self, event: Event) -> Event:
        """Apply and append `event`. A failed write (a full disk) is counted, never raised: boot
        answers must not depend on the log."""
        if event.mac and not event.node:
            event.node = self.known.get(event.mac, "")
        with self._lock:
            self._apply(event)
            if self._fd is not None:
                try:
                    self._append(event.line().encode())
                except OSError:
                    self.write_failures += 1
                if self._size > self.max_bytes:
                    self._compact()
        return event

    def _append(self, data: bytes) -> int:
        """One line in one O_APPEND write (whole lines interleave safely with other processes');
        returns the file offset just past it. A write cut short (a disk filling up) is finished or,
        failing that, ended with a newline, so that the fragment never swallows the next line."""
        written = os.write(self._fd, data)
        try:
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError:
            os.write(self._fd, b"\n")  # best effort: a torn line is skipped by every reader
            raise
        end = os.lseek(self._fd, 0, os.SEEK_CUR)  # after an O_APPEND write: just past our line
        self._size = end
        return end

    def _compact(self) -> None:
        """Past the cap: keep the log as events.jsonl.1 and start events.jsonl anew with the state
        as it is now (one line per node, per discovered MAC, and the alert counts). Called with the
        lock held; a failure (a full disk) leaves the log as it was and is counted."""
        lines = [Event(COMPACTED, source="serve").line()]
        known = self.known
        lines += [s.snapshot_event().line() for s in self.nodes.values() if s.mac in known or not self.only_known]
        lines += [Event(EventKind.DISCOVERED, mac=mac, source="serve", ts=ts).line()
                  for mac, ts in self.discovered.items()]
        if self.alerts:
            lines.append(Event(ALERT_SUMMARY, source="serve", detail=self.alert_book.summary()).line())
        data = "".join(lines).encode()
        fresh = self.path.with_name(self.path.name + ".new")
        try:
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            os.replace(fresh, self.path)
        except OSError:
            self.write_failures += 1
            fresh.unlink(missing_ok=True)
            self.max_bytes *= 2  # do not try again on every line
            return
        self._open_for_append()
        self.follower.at_end_of(self._fd)  # our snapshot is applied already
        self._own_lines.clear()
        if self._size * 4 > self.max_bytes * 3:
            # A state this close to the cap would be compacted again within a few lines, or on every
            # line once it passes it (the red team's flood did that): room for as much again.
            self.max_bytes = self._size * 2

    def count_alert(self, event: Event) -> None:
        """An alert that is not written (throttled): counted, its sender remembered, in memory only;
        the counts reach the file with the next compaction's summary."""
        if event.mac and not event.node:
            event.node = self.known.get(event.mac, "")
        with self._lock:
            self.alert_book.add(event)

    def _apply(self, event: Event) -> None:
        if event.kind == ALERT_SUMMARY:
            self.alert_book.restore(event.detail)
        if event.kind == ALERT:
            self.alert_book.add(event)
        if event.kind == EventKind.DISCOVERED and event.mac and (
                event.mac in self.discovered or len(self.discovered) < MAX_DISCOVERED):
            self.discovered.setdefault(event.mac, event.ts)
        if event.kind == Phase.IPXE and event.mac and event.detail.get("ip"):
            self._remember_address(str(event.detail["ip"]), event.mac)
        if not event.mac or not changes_state(event.kind):
            return
        if self.only_known and event.mac not in self.known:
            return
        state = self.nodes.get(event.mac) or NodeState(mac=event.mac, name=self.known.get(event.mac, ""))
        self.nodes[event.mac] = state
        state.apply(event)

    def _remember_address(self, address: str, mac: str) -> None:
        self.address_macs[address] = mac
        self.address_macs.move_to_end(address)
        while len(self.address_macs) > MAX_ADDRESSES:
            self.address_macs.popitem(last=False)

    def state(self, mac: str) -> NodeState | None:
        return self.nodes.get(mac)

    def is_installed(self, mac: str) -> bool:
        state = self.nodes.get(mac)
        return bool(state and state.installed)

    def snapshot(self) -> list[NodeState]:
        """One state per known node (in cluster order), then any other MAC seen."""
        known = self.known
        with self._lock:
            states = [self.nodes.get(mac) or NodeState(mac=mac, name=name) for mac, name in known.items()]
            states += [s for mac, s in self.nodes.items() if mac not in known]
        return states


class SharedEventLog(EventLog):
    """The event log shared by several serve workers: one file, every worker's decisions made from
    every worker's events (docs/architecture.md, "Several workers").

    Install windows are decided from node states, and the states are the event log replayed. With
    several processes, each keeps its own replay, so a decision must first see what the others
    recorded:

    - every decision, and every event recorded, runs under an exclusive `flock` of run/events.lock;
    - holding it, the worker applies whatever was appended since its last look (other workers' lines,
      `reinstall` and `wait` from the command line), then decides, then appends its own lines;
    - its own lines are not applied twice: a line appended right after the others' is passed over by
      advancing the read position; one with a command-line line between is remembered by its offset;
    - a worker that finds the file compacted under it reopens it, forgets its replay and reads the new
      file, whose first lines hold every node's state;
    - `reinstall` and `wait` take the same lock for their one line (`append_event`);
    - an event that could not be written (a full disk) makes the decision void: `saved()` is False
      and serve answers 503 rather than act on what the other workers cannot know.

    The lock is held for a decision and its rendering, never across an await.
    """

    def __init__(self, output: Path, known=None, max_bytes: int = MAX_BYTES, only_known: bool = False):
        # The log itself is replaced on compaction; the lock file never is.
        self._lock_path = output / RUN / WORKERS_LOCK
        self._lock_fd: int | None = None
        self._depth = 0  # transactions nest (record inside a decision): only the outer one locks
        self._unsaved = False  # an event of the current transaction did not reach the file
        super().__init__(output, known, max_bytes, only_known)

    def open(self) -> None:
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        with self.transaction():
            caught_up = self.follower.offset
            super().open()
            self.follower.offset = caught_up  # not the end of the file: a line still being written is not passed by

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

    def record(self, event: Event) -> Event:
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
        if end - len(data) == self.follower.offset:
            self.follower.offset = end  # nothing came between our catch-up and our line
        else:
            self._own_lines.add(end - len(data))  # a command-line line came between: pass ours by offset
        return end


# How Event.line() spells an external source; the full parse that follows decides.
_EXTERNAL_MARKS = tuple(f'"source":"{source}"'.encode() for source in sorted(EXTERNAL_SOURCES))


def _may_be_external(block: bytes) -> bool:
    return any(mark in block for mark in _EXTERNAL_MARKS)
