"""`serve --workers N`: N HTTP worker processes on one port, one of them the leader.

The leader is the `serve` process itself: it owns the output directory (serve.json, dnsmasq, TFTP)
and starts N-1 more workers, each `python -m app.serve --worker` with the same options. Every
worker listens on the port with SO_REUSEPORT, so the kernel spreads new connections over them, and
all share the one event log (`app.events.log.SharedEventLog`), which is what install windows are decided from.

Workers die with the leader (a parent-death signal), and the leader stops them on its way out; one
that exits on its own is started again (at most once every RESTART_SECONDS, so that a worker that
cannot start does not spin).
Each worker publishes its counters to `run/workers/<index>.json` once a second; `/metrics` on any
worker adds up its own live counters and the others' last published ones.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import app
from app.atomic_file import atomic_write
from app.layout import RUN
from app.serve.guard.throttle import Throttle

log = logging.getLogger("bootstrap_node.workers")
WORKERS_DIR = "workers"  # under run/
RESTART_SECONDS = 10.0


def spawn(options_json: str, count: int) -> list[subprocess.Popen]:
    """Workers 1..count-1, started by the leader once it listens. They run the leader's own copy of
    the app (cwd is the directory holding its package, whatever directory serve was started in),
    and if one cannot be started, those already started are stopped again."""
    started: list[subprocess.Popen] = []
    try:
        for index in range(1, count):
            started.append(spawn_one(options_json, index))
    except OSError:
        stop(started, 5.0)
        raise
    return started


def spawn_one(options_json: str, index: int) -> subprocess.Popen:
    env = {**os.environ, "BOOTSTRAP_WORKER_PARENT": str(os.getpid())}
    home = Path(app.__file__).resolve().parent.parent
    return subprocess.Popen([sys.executable, "-m", "app.serve", "--worker", str(index), options_json],
                            stdin=subprocess.DEVNULL, env=env, cwd=home)


def stop(children: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM (each finishes its in-flight requests, as serve does), then SIGKILL for any still
    running `timeout` seconds later (one deadline for all of them)."""
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker pid %d did not stop in %.0f s: killed", child.pid, timeout)
            child.kill()
            child.wait()


class Pool:
    """The leader's other workers: started once it listens, started again when one exits on its
    own (each at most once every RESTART_SECONDS), stopped on the way out."""

    def __init__(self, options_json: str, count: int, clock: Callable[[], float] = time.monotonic):
        self.options_json, self.count, self.clock = options_json, count, clock
        self.children: list[subprocess.Popen] = []
        self._restarts = Throttle(RESTART_SECONDS)

    def start(self) -> None:
        self.children = spawn(self.options_json, self.count)

    def restart_exited(self, on_restart: Callable[[int, subprocess.Popen], None]) -> None:
        """A worker that exited without being asked to (a crash, the OOM killer) is started again;
        the others served meanwhile, so a crash costs only that worker's in-flight requests.
        `on_restart(index, exited)` is told first."""
        for index, child in enumerate(self.children, start=1):
            if child.poll() is None or not self._restarts.allow((index,), self.clock()):
                continue
            on_restart(index, child)
            self.children[index - 1] = spawn_one(self.options_json, index)

    def stop(self, timeout: float) -> None:
        stop(self.children, timeout)


def clear(output: Path) -> None:
    """The leader, at start: no counters of an earlier run's workers."""
    directory = output / RUN / WORKERS_DIR
    for stale in directory.glob("*.json") if directory.is_dir() else []:
        stale.unlink(missing_ok=True)


def publish(output: Path, index: int, counters: dict) -> None:
    directory = output / RUN / WORKERS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(directory / f"{index}.json", json.dumps(counters).encode(), 0o644)


def others(output: Path, index: int) -> list[dict]:
    """The last counters every other worker published."""
    found = []
    directory = output / RUN / WORKERS_DIR
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        if path.stem == str(index):
            continue
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue  # a worker that never published, or a file being replaced: its counters wait
        if isinstance(data, dict):
            found.append(data)
    return found
