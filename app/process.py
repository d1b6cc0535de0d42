"""Processes by pid: is it alive, is it still the one we started, stop it and wait.

A pid alone names a process only until it exits: after that (or after a reboot) the number can
belong to anything. `Identity` pins a pid to one process (boot, start time, command line) so we never
signal a stranger.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    pid: int
    boot_id: str  # changes on every reboot
    start_ticks: int  # the process's start time, in clock ticks since boot (field 22 of /proc/PID/stat)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Identity | None:
        try:
            return cls(int(data["pid"]), str(data["boot_id"]), int(data["start_ticks"]))
        except (KeyError, TypeError, ValueError):
            return None

    def matches(self) -> bool:
        """True while this exact process runs (a reused pid or a reboot gives False)."""
        current = identity(self.pid)
        return current is not None and current == self


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def identity(pid: int) -> Identity | None:
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20:
        return None
    return Identity(pid, boot_id(), int(fields[19]))  # starttime is field 22; fields[0] is field 3


def alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped) counts as gone, and is reaped when
    it is our own child."""
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] == "Z":
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def wait_gone(pid: int, timeout: float, poll: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
    return True


def stop(pid: int, timeout: float = 15.0, *, group: bool = False, kill: bool = True) -> bool:
    """SIGTERM `pid` (or its process group), wait up to `timeout`, then SIGKILL when `kill`.
    Returns True once it is gone."""
    send = os.killpg if group else os.kill
    for sig in (signal.SIGTERM, signal.SIGKILL) if kill else (signal.SIGTERM,):
        try:
            send(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        if wait_gone(pid, timeout):
            return True
    return not alive(pid)


def with_argument(argument: str) -> list[int]:
    """Pids of processes (of any user) whose command line has exactly this argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            found.append(int(entry.name))
    return found
