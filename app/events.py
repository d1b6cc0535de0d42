"""The event log (`events.jsonl`) and the node states derived from it.

Events are the single record of progress: the status page, `status`, `discover`, the boot policy
(reinstall guard, install windows), `/metrics` and `wait` all read them. One JSON object per line,
so a restarted `serve` (or any reader) rebuilds every node's state, install windows included, by
replaying the file. Secrets never enter the log: credentials appear only as SHA-256 digests.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from app.layout import EVENTS


class Phase(str, Enum):
    """The path a node walks, in order. A node never moves backwards except through `reinstall`."""

    DHCP = "dhcp"
    TFTP = "tftp"
    IPXE = "ipxe"
    KERNEL = "kernel"
    INSTALL_IGNITION = "install-ignition"
    INSTALLING = "installing"
    INSTALLED = "installed"
    FINAL_IGNITION = "final-ignition"
    KUBEADM = "kubeadm"
    JOINED = "joined"
    READY = "ready"


PHASES = [p.value for p in Phase]
# What a node itself may POST to /events.
CALLBACK_PHASES = {"installing", "installed", "final-ignition", "kubeadm", "joined", "failed"}
# Reported during the install (install-stage credential) and after it (the final config's).
INSTALL_CALLBACKS = {"installing", "installed"}
FINAL_CALLBACKS = {"final-ignition", "kubeadm", "joined"}
# Kinds that change a node's install window (see NodeState.apply).
FINAL_CONFIG_SERVED = "final-config"
ALERT = "alert"
CONTESTED = "window-contested"
# Sources that write from other processes (`reinstall`, `wait`); a running serve follows them.
EXTERNAL_SOURCES = {"cli", "wait"}
RECENT_ALERTS = 50
EVENTS_FILE = EVENTS  # kept for readers that import it from here


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(ts: str) -> float:
    try:
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


@dataclass
class Event:
    kind: str  # a Phase value, "failed", "discovered", "reinstall", "alert", "http", or a notice
    mac: str = ""
    node: str = ""
    message: str = ""
    source: str = ""  # "http", "dnsmasq", "node", "serve", "cli", "wait"
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
            event = cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (ValueError, TypeError, KeyError, RecursionError):
            return None
        return event if isinstance(event.detail, dict) and isinstance(event.kind, str) else None


@dataclass
class Window:
    """One install: opened by the node's PXE boot (`ipxe`), closed by `installed`, `reinstall`, or
    its timeout. Secret-bearing configs go out only inside it, each once."""

    opened: float  # epoch seconds
    address: str  # the address that PXE-booted
    link_mac: str = ""  # that address's MAC in the appliance's neighbour table, when it was on our L2
    install_credential: str = ""  # sha256 of the credential the install config carried
    install_served: bool = False
    final_served: bool = False
    contested: bool = False  # a second machine asked for this node's boot: no secret goes out

    def is_open(self, now: float, timeout: float) -> bool:
        return now - self.opened < timeout


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
    window: Window | None = None
    callback_credential: str = ""  # sha256 of the final config's credential (post-install callbacks)

    def apply(self, event: Event) -> None:
        self.first_seen = self.first_seen or event.ts
        self.updated = event.ts
        if event.node:
            self.name = event.node
        if event.kind == "reinstall":
            self.phase, self.error, self.installed, self.history, self.window = "", "", False, [], None
            return
        self._apply_window(event)
        if event.kind == "failed":
            self.error = event.message or "failed"
        elif event.kind in PHASES:
            self._advance(event)

    def _advance(self, event: Event) -> None:
        self.error = ""
        if self.phase and event.kind == Phase.INSTALL_IGNITION and self.installed:
            return
        if not self.phase or PHASES.index(event.kind) >= PHASES.index(self.phase):
            if event.kind != self.phase:
                self.history.append((event.ts, event.kind))
            self.phase = event.kind
        if event.kind == Phase.INSTALLED:
            self.installed = True

    def _apply_window(self, event: Event) -> None:
        detail = event.detail
        if event.kind == Phase.IPXE and detail.get("window") == "open":
            self.window = Window(epoch(event.ts), str(detail.get("ip", "")), str(detail.get("link_mac", "")))
        elif self.window is None:
            return
        elif event.kind == Phase.INSTALL_IGNITION and detail.get("credential"):
            self.window.install_served = True
            self.window.install_credential = str(detail["credential"])
        elif event.kind == FINAL_CONFIG_SERVED:
            self.window.final_served = True
            self.callback_credential = str(detail.get("credential", ""))
        elif event.kind == CONTESTED:
            self.window.contested = True
        elif event.kind == Phase.INSTALLED and event.source == "node":
            self.window = None


class EventLog:
    """Append-only events.jsonl plus the live node states, safe from several threads.

    `known` gives MAC -> node name for the nodes being served; it is asked again on every use, so
    when serve's store reloads groups (a node added and generated while serving), the log knows the
    new node at once: one source of truth for which nodes exist.
    """

    def __init__(self, output: Path, known: Callable[[], dict[str, str]] | dict[str, str] | None = None):
        self.path = output / EVENTS
        fixed = dict(known or {}) if not callable(known) else None
        self._known: Callable[[], dict[str, str]] = known if callable(known) else (lambda: fixed)
        self.nodes: dict[str, NodeState] = {}
        self.discovered: dict[str, str] = {}  # mac -> first seen
        self.alerts: Counter = Counter()  # reason -> count
        self.recent_alerts: deque[Event] = deque(maxlen=RECENT_ALERTS)
        self.write_failures = 0
        self._lock = threading.Lock()
        self._file = None
        self._followed = 0  # bytes of the file already read
        self.follow(external_only=False)

    @property
    def known(self) -> dict[str, str]:
        return self._known()

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
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError:
                self.write_failures += 1
            self._file = None

    def record(self, event: Event) -> Event:
        """Apply and append `event`. A failed write (a full disk) is counted, never raised: boot
        answers must not depend on the log."""
        if event.mac and not event.node:
            event.node = self.known.get(event.mac, "")
        with self._lock:
            if self._file is not None:
                try:
                    self._file.write(event.line())
                    self._file.flush()
                except OSError:
                    self.write_failures += 1
            self._apply(event)
        return event

    def _apply(self, event: Event) -> None:
        if event.kind == ALERT:
            self.alerts[str(event.detail.get("reason", "alert"))] += 1
            self.recent_alerts.append(event)
        if event.kind == "discovered" and event.mac:
            self.discovered.setdefault(event.mac, event.ts)
        if not event.mac or not _changes_state(event.kind):
            return
        state = self.nodes.get(event.mac) or NodeState(mac=event.mac, name=self.known.get(event.mac, ""))
        self.nodes[event.mac] = state
        state.apply(event)

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


def _changes_state(kind: str) -> bool:
    return kind in PHASES or kind in ("failed", "reinstall", FINAL_CONFIG_SERVED, CONTESTED)


def append_event(output: Path, event: Event) -> None:
    """One event from another process (wait, reinstall): an O_APPEND write of one line, which
    interleaves safely with a running serve's own lines."""
    fd = os.open(output / EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, event.line().encode())
    finally:
        os.close(fd)


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
