"""What the event log holds: the phases a node walks, one event, and the node state (install window
included) that replaying events builds. Pure data: events/log.py reads and writes the file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from enum import Enum


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
NODE_STATE = "node-state"  # a node's whole state, written when the log is compacted
ALERT_SUMMARY = "alert-summary"  # alert counts carried over a compaction
COMPACTED = "log-compacted"  # the first line of a compacted log: what follows is the whole state
ALERT = "alert"
CONTESTED = "window-contested"
# Sources that write from other processes (`reinstall`, `wait`); a running serve follows them.
EXTERNAL_SOURCES = {"cli", "wait"}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
    def from_json(cls, text: str) -> Event | None:
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

    @property
    def in_use(self) -> bool:
        """A config went out or a second machine claimed the node: this window is never renewed."""
        return self.install_served or self.final_served or self.contested


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

    def snapshot_event(self) -> Event:
        """This state as one event: replaying it restores the state (compaction)."""
        window = self.window
        detail = {"phase": self.phase, "error": self.error, "installed": self.installed,
                  "first_seen": self.first_seen, "history": [list(h) for h in self.history],
                  "callback_credential": self.callback_credential,
                  "window": None if window is None else {
                      "opened": window.opened, "address": window.address, "link_mac": window.link_mac,
                      "install_credential": window.install_credential, "install_served": window.install_served,
                      "final_served": window.final_served, "contested": window.contested}}
        return Event(NODE_STATE, mac=self.mac, node=self.name, source="serve", detail=detail, ts=self.updated)

    def _restore(self, detail: dict) -> None:
        self.phase, self.error = str(detail.get("phase", "")), str(detail.get("error", ""))
        self.installed = bool(detail.get("installed"))
        self.first_seen = str(detail.get("first_seen", "")) or self.first_seen
        self.history = [(str(ts), str(phase)) for ts, phase in detail.get("history", [])]
        self.callback_credential = str(detail.get("callback_credential", ""))
        window = detail.get("window")
        self.window = Window(**window) if isinstance(window, dict) else None

    def apply(self, event: Event) -> None:
        if event.kind == NODE_STATE:
            try:
                self._restore(event.detail)
            except (TypeError, ValueError):
                pass  # a damaged snapshot line: the node starts over as pending
            self.updated = event.ts
            return
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


def changes_state(kind: str) -> bool:
    return kind in PHASES or kind in ("failed", "reinstall", FINAL_CONFIG_SERVED, CONTESTED, NODE_STATE)
