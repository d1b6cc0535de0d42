"""The event log (`events.jsonl`) and the node state machine derived from it.

Events are the single record of progress: the status page, `status`, `discover`, the
reinstall-loop guard and `wait` all read them. One JSON object per line, flushed per line, so a
restarted `serve` (or any reader) rebuilds every node's state by replaying the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

# The path a node walks, in order. A node never moves backwards except through `reinstall`.
PHASES = ["dhcp", "tftp", "ipxe", "kernel", "install-ignition", "installing", "installed",
          "final-ignition", "kubeadm", "joined", "ready"]
# What a node itself may POST to /events.
CALLBACK_PHASES = {"installing", "installed", "final-ignition", "kubeadm", "joined", "failed"}
EVENTS_FILE = "events.jsonl"
# Sources that write from other processes (`reinstall`, `wait`); a running serve follows them.
EXTERNAL_SOURCES = {"cli", "wait"}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Event:
    kind: str  # a phase, "failed", "discovered", "reinstall", "http", or a dnsmasq/serve notice
    mac: str = ""
    node: str = ""
    message: str = ""
    source: str = ""  # "http", "dnsmasq", "node", "serve", "cli"
    detail: dict = field(default_factory=dict)
    ts: str = field(default_factory=now_iso)

    def line(self) -> str:
        # Built by hand, keys in a fixed order: this runs for every boot-relevant request.
        data = {"detail": self.detail, "kind": self.kind, "mac": self.mac, "message": self.message,
                "node": self.node, "source": self.source, "ts": self.ts}
        return json.dumps({k: v for k, v in data.items() if v}, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Event | None":
        try:
            data = json.loads(text)
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError):
            return None


@dataclass
class NodeState:
    mac: str
    name: str = ""
    phase: str = ""
    error: str = ""
    installed: bool = False
    updated: str = ""
    first_seen: str = ""
    history: list[tuple[str, str]] = field(default_factory=list)  # (ts, phase)

    def apply(self, event: Event) -> None:
        self.first_seen = self.first_seen or event.ts
        self.updated = event.ts
        if event.node:
            self.name = event.node
        if event.kind == "reinstall":
            self.phase, self.error, self.installed, self.history = "", "", False, []
        elif event.kind == "failed":
            self.error = event.message or "failed"
        elif event.kind in PHASES:
            self.error = ""
            if self.phase and event.kind == "install-ignition" and self.installed:
                return
            if not self.phase or PHASES.index(event.kind) >= PHASES.index(self.phase):
                if event.kind != self.phase:
                    self.history.append((event.ts, event.kind))
                self.phase = event.kind
            if event.kind == "installed":
                self.installed = True


class EventLog:
    """Append-only events.jsonl plus the live node states, safe from several threads."""

    def __init__(self, output: Path, known: dict[str, str] | None = None):
        self.path = output / EVENTS_FILE
        self.known = dict(known or {})  # mac -> node name, from the cluster being served
        self.nodes: dict[str, NodeState] = {}
        self.discovered: dict[str, str] = {}  # mac -> first seen
        self._lock = threading.Lock()
        self._file = None
        self._followed = 0  # bytes of the file already read
        self.follow(external_only=False)

    def follow(self, external_only: bool = True) -> int:
        """Apply lines appended since the last look. A running serve calls this periodically and
        takes only other processes' events (its own are applied as it writes them). Returns how
        many events were applied."""
        try:
            with self.path.open("rb") as f:
                f.seek(self._followed)
                data = f.read()
        except FileNotFoundError:
            return 0
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self._followed += len(complete)
        applied = 0
        for line in complete.decode("utf-8", errors="replace").splitlines():
            event = Event.from_json(line)
            if event is not None and (not external_only or event.source in EXTERNAL_SOURCES):
                with self._lock:
                    self._apply(event)
                applied += 1
        return applied

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")

    def close(self) -> None:
        if self._file:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def record(self, event: Event) -> Event:
        if event.mac and not event.node:
            event.node = self.known.get(event.mac, "")
        with self._lock:
            if self._file is not None:
                self._file.write(event.line())
                self._file.flush()
            self._apply(event)
        return event

    def _apply(self, event: Event) -> None:
        if event.kind == "discovered" and event.mac:
            self.discovered.setdefault(event.mac, event.ts)
        if not event.mac or (event.kind not in PHASES and event.kind not in ("failed", "reinstall")):
            return
        state = self.nodes.get(event.mac) or NodeState(mac=event.mac, name=self.known.get(event.mac, ""))
        self.nodes[event.mac] = state
        state.apply(event)

    def is_installed(self, mac: str) -> bool:
        state = self.nodes.get(mac)
        return bool(state and state.installed)

    def snapshot(self) -> list[NodeState]:
        """One state per known node (in cluster order), then any other MAC seen."""
        with self._lock:
            states = [self.nodes.get(mac) or NodeState(mac=mac, name=name) for mac, name in self.known.items()]
            states += [s for mac, s in self.nodes.items() if mac not in self.known]
        return states


def append_event(output: Path, event: Event) -> None:
    """One event from another process (wait, reinstall): an O_APPEND write of one line, which
    interleaves safely with a running serve's own lines."""
    fd = os.open(output / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, event.line().encode())
    finally:
        os.close(fd)


def read_events(path: Path):
    """Every well-formed event in the file; a torn last line (a crash mid-write) is skipped."""
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                event = Event.from_json(line)
                if event is not None:
                    yield event
    except FileNotFoundError:
        return
