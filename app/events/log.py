"""The event log (`events.jsonl`): appending, following, compacting, and the node states it replays to.

Events are the single record of progress: the status page, `status`, `discover`, the boot policy
(reinstall guard, install windows), `/metrics` and `wait` all read them. One JSON object per line,
so a restarted `serve` (or any reader) rebuilds every node's state, install windows included, by
replaying the file. Secrets never enter the log: credentials appear only as SHA-256 digests.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.events.model import (
    ALERT,
    ALERT_SUMMARY,
    COMPACTED,
    EXTERNAL_SOURCES,
    Event,
    NodeState,
    Phase,
    changes_state,
)
from app.layout import EVENTS, RUN

RECENT_ALERTS = 50
MAX_DISCOVERED = 256  # distinct unknown MACs kept for `discover` and the status page; more are not kept
MAX_ADDRESSES = 65536  # address -> MAC pairs remembered from PXE boots (download attribution)
MAX_BYTES = 64 * 1024 * 1024  # events.jsonl is compacted past this; events.jsonl.1 keeps the one before
WORKERS_LOCK = "events.lock"  # under run/: taken by every writer when serve runs several workers
FOLLOW_BLOCK = 1024 * 1024  # follow() reads this much at a time: memory stays bounded whatever the size


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
        # Node states only for the known nodes (serve, and a reader that knows the cluster): an event
        # naming any other MAC, in the file or recorded, changes no state. Anyone on the LAN can make
        # up MACs; nodes are what cluster.yaml says.
        self.only_known = only_known
        self._size = 0  # bytes in the file we append to
        self._inode = 0
        fixed = dict(known or {}) if not callable(known) else None
        self._known: Callable[[], dict[str, str]] = known if callable(known) else (lambda: fixed)
        self.nodes: dict[str, NodeState] = {}
        self.discovered: dict[str, str] = {}  # mac -> first seen
        self.alerts: Counter = Counter()  # reason -> count
        self.recent_alerts: deque[Event] = deque(maxlen=RECENT_ALERTS)
        # reason -> (first, last) sender of that alert: address, neighbour MAC, route, node, time.
        self.alert_senders: dict[str, tuple[dict, dict]] = {}
        self.address_macs: OrderedDict[str, str] = OrderedDict()  # the address each node PXE-booted from
        self.write_failures = 0
        self._lock = threading.RLock()
        self._fd: int | None = None  # events.jsonl, opened for appending
        self._followed = 0  # bytes of the file already read
        self._own_lines: set[int] = set()  # offsets of lines of ours that follow() has yet to pass
        self.follow(external_only=False)

    @property
    def known(self) -> dict[str, str]:
        return self._known()

    @contextmanager
    def transaction(self) -> Iterator[EventLog]:
        """Decide from the states and record the decision's events as one step: two requests for the
        same node never both see its window unused. One process: a thread lock (asyncio handlers
        run one at a time anyway). Several workers share one log: see serve/shared_events.py."""
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
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return 0
        applied = 0
        # Under the lock: serve runs this in a thread, and a compaction on the event loop moves the
        # read position and the inode this reads and updates.
        with f, self._lock:
            st = os.fstat(f.fileno())
            if st.st_ino != self._inode or st.st_size < self._followed:
                if self._inode and not external_only and _starts_compacted(f):
                    self._forget()  # compacted: its first lines hold every node's state
                self._inode, self._followed = st.st_ino, 0
                self._own_lines.clear()
            f.seek(self._followed)
            for at, block in self._complete_blocks(f):
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

    def _complete_blocks(self, f) -> Iterator[tuple[int, bytes]]:
        """The unread part of the file in blocks of whole lines (at most FOLLOW_BLOCK bytes each) with
        their offsets, advancing `_followed` past each; a line still being written waits."""
        while True:
            data = f.read(FOLLOW_BLOCK)
            end = data.rfind(b"\n") + 1
            if end == 0:
                if len(data) < FOLLOW_BLOCK:
                    return
                end = len(data)  # no line is this long: garbage, skipped rather than waited on forever
            f.seek(end - len(data), os.SEEK_CUR)
            self._followed += end
            yield self._followed - end, data[:end]

    def _forget(self) -> None:
        with self._lock:
            self.nodes.clear()
            self.discovered.clear()
            self.alerts.clear()
            self.alert_senders.clear()

    def open(self) -> None:
        self._open_for_append()
        st = os.fstat(self._fd)
        self._inode = st.st_ino
        self._followed = max(self._followed, st.st_size) if self._followed else st.st_size

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
        lines += [Event("discovered", mac=mac, source="serve", ts=ts).line() for mac, ts in self.discovered.items()]
        if self.alerts:
            senders = {reason: list(pair) for reason, pair in self.alert_senders.items()}
            lines.append(Event(ALERT_SUMMARY, source="serve",
                               detail={"counts": dict(self.alerts), "senders": senders}).line())
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
        self._inode, self._followed = os.fstat(self._fd).st_ino, self._size  # our snapshot is applied already
        self._own_lines.clear()
        if self._size * 4 > self.max_bytes * 3:
            # A state this close to the cap would be compacted again within a few lines, or on every
            # line once it passes it (the red team's flood did that): room for as much again.
            self.max_bytes = self._size * 2

    def count_alert(self, event: Event) -> None:
        """An alert that is not written (throttled): counted, its sender remembered, in memory only;
        the counts reach the file with the next compaction's summary."""
        with self._lock:
            self._apply_alert(event)

    def _apply_alert(self, event: Event) -> None:
        reason = str(event.detail.get("reason", "alert"))
        self.alerts[reason] += 1
        self.recent_alerts.append(event)
        sender = {"remote": str(event.detail.get("remote", "")), "link_mac": str(event.detail.get("link_mac", "")),
                  "route": str(event.detail.get("route", "")), "node": event.node or event.mac, "ts": event.ts}
        first = self.alert_senders.get(reason, (sender, sender))[0]
        self.alert_senders[reason] = (first, sender)

    def _apply(self, event: Event) -> None:
        if event.kind == ALERT_SUMMARY:
            self.alerts.update({str(k): int(v) for k, v in event.detail.get("counts", {}).items()})
            senders = event.detail.get("senders")
            for reason, pair in (senders.items() if isinstance(senders, dict) else ()):
                if isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, dict) for s in pair):
                    self.alert_senders[str(reason)] = (pair[0], pair[1])
        if event.kind == ALERT:
            self._apply_alert(event)
        if event.kind == "discovered" and event.mac and (
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


# How Event.line() spells an external source; the full parse that follows decides.
_EXTERNAL_MARKS = tuple(f'"source":"{source}"'.encode() for source in sorted(EXTERNAL_SOURCES))


def _may_be_external(block: bytes) -> bool:
    return any(mark in block for mark in _EXTERNAL_MARKS)


def _starts_compacted(f) -> bool:
    """Whether the file (a new one under the same name, or one cut short) is a compaction's, whose
    first lines hold every node's state. Anything else (truncated or deleted by hand) is not taken
    for the truth: the states already known are kept."""
    f.seek(0)
    first = f.readline(4096)
    return f'"kind":"{COMPACTED}"'.encode() in first


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
