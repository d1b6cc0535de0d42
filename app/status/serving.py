"""serve.json: who is serving an output directory, so `teardown` (and a starting `serve`) can find it.

It records the serve process's identity (pid, boot, start time) and its dnsmasq child's, so a stop
signals only those exact processes: after a crash or a reboot the pids may name something else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from app import process
from app.atomic_file import atomic_write
from app.layout import SERVE_STATE


@dataclass(frozen=True)
class ServeState:
    serve: process.Identity
    url: str
    output: str
    dnsmasq: process.Identity | None = None

    def to_json(self) -> bytes:
        data = {"pid": self.serve.pid, "serve": self.serve.as_dict(), "url": self.url, "output": self.output,
                "dnsmasq": self.dnsmasq.as_dict() if self.dnsmasq else None}
        return (json.dumps(data) + "\n").encode()


def write(output: Path, state: ServeState) -> None:
    atomic_write(output / SERVE_STATE, state.to_json(), 0o644)


def remove(output: Path) -> None:
    (output / SERVE_STATE).unlink(missing_ok=True)


def read(output: Path) -> ServeState | None:
    """The recorded state, or None when there is none (or it is unreadable: treated as none)."""
    try:
        data = json.loads((output / SERVE_STATE).read_text())
        serve = process.Identity.from_dict(data["serve"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if serve is None:
        return None
    dnsmasq = process.Identity.from_dict(data.get("dnsmasq") or {})
    return ServeState(serve, str(data.get("url", "")), str(data.get("output", "")), dnsmasq)


class Stopped(Enum):
    NOTHING = "nothing running"
    STALE = "the recorded serve is not running"
    STOPPED = "stopped"
    TIMEOUT = "did not exit in time"


def stop_recorded(output: Path, timeout: float) -> tuple[Stopped, ServeState | None]:
    """Stop the serve recorded for `output`, only if it is still that exact process; clean up a
    dnsmasq it left behind (a serve killed with SIGKILL cannot stop its child)."""
    state = read(output)
    if state is None:
        return Stopped.NOTHING, None
    if not state.serve.matches():
        stop_orphan_dnsmasq(state)
        remove(output)
        return Stopped.STALE, state
    if not process.stop(state.serve.pid, timeout, kill=False):
        return Stopped.TIMEOUT, state
    stop_orphan_dnsmasq(state)
    return Stopped.STOPPED, state


def stop_orphan_dnsmasq(state: ServeState) -> bool:
    """Stop the recorded dnsmasq when it still runs as that exact process. True if one was stopped."""
    child = state.dnsmasq
    if child is None or not child.matches():
        return False
    return process.stop(child.pid, timeout=5.0)
