"""A program serve runs and owns (dnsmasq, chronyd): started under `guardian.py`, which dies with
serve even when serve is killed with SIGKILL and takes the program with it; its output read line by
line; restarted with backoff when it dies, until it dies `max_quick_deaths` times in a row within
`quick_seconds` of starting (or at once with a known fatal message), when serve gives up with the
program's own last words.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable

from app.events import Event, EventKind

log = logging.getLogger("bootstrap_node.child")
GUARDIAN_STARTED = re.compile(r"guardian: \S+ pid (\d+)$")  # guardian.py's first line


class ChildFailed(Exception):
    """A supervised program cannot run; the message says why and what to do."""


class Child:
    """One supervised program. Subclasses say how to start it and what its lines mean."""

    name = "child"  # in messages
    started: EventKind  # recorded when the program starts (detail: its pid and its guardian's)
    exited: EventKind  # recorded when it exits (detail: its exit code)
    install_hint = ""  # what to do when the binary is missing

    def __init__(self, on_event: Callable[[Event], None], *, binary: str, max_quick_deaths: int = 5,
                 quick_seconds: float = 10.0, on_restart: Callable[[], None] = lambda: None,
                 on_started: Callable[[int], None] = lambda pid: None):
        self.on_event, self.binary = on_event, binary
        self.max_quick_deaths, self.quick_seconds, self.on_restart = max_quick_deaths, quick_seconds, on_restart
        self.on_started = on_started  # serve records the guardian, to stop it if serve is killed
        self.process: asyncio.subprocess.Process | None = None
        self.recent: deque[str] = deque(maxlen=20)
        self._stopping = False
        self._unusable: str | None = None

    def program(self, binary: str) -> list[str]:
        """The program's command line, `binary` being its resolved path."""
        raise NotImplementedError

    def on_line(self, text: str) -> Event | None:
        """The event one line of the program's output means, if any."""
        return None

    def diagnose(self, lines: list[str]) -> str | None:
        """What to do about a known fatal message in these lines; None when none is known."""
        return None

    def unusable(self, text: str) -> str | None:
        """What to do when this line says the program runs on but cannot do its job (it is then stopped
        and not restarted: the same start would fail the same way); None for an ordinary line."""
        return None

    def command(self) -> list[str]:
        program = self.program(shutil.which(self.binary) or self.binary)
        return [sys.executable, "-m", "app.serve.supervise.guardian", "--", *program]

    async def run(self) -> None:
        """Run until stop(); raise ChildFailed when the program keeps dying."""
        if shutil.which(self.binary) is None:
            raise ChildFailed(f"{self.binary} not found: {self.install_hint}")
        quick_deaths, backoff = 0, 0.5
        while not self._stopping:
            began = time.monotonic()
            self.process = await asyncio.create_subprocess_exec(
                *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env={**os.environ, "BOOTSTRAP_GUARDIAN_PARENT": str(os.getpid())})
            self.on_started(self.process.pid)  # the guardian: stopping it stops the program
            await self._read_log(self.process)
            code = await self.process.wait()
            if self._stopping:
                return
            if self._unusable is not None:
                raise ChildFailed(f"{self.name} exited: serve stopped it: {self._unusable}\n"
                                  + "\n".join(f"  {self.name}: {line}" for line in self.recent))
            lived = time.monotonic() - began
            self.on_event(Event(self.exited, source="serve", message=f"exit code {code} after {lived:.1f}s",
                                detail={"code": code}))
            quick_deaths = quick_deaths + 1 if lived < self.quick_seconds else 1
            fatal = self.diagnose(list(self.recent))
            if quick_deaths >= self.max_quick_deaths or (lived < 2 and fatal is not None):
                raise ChildFailed(f"{self.name} exited with code {code} {quick_deaths} time(s) in a row: "
                                  f"{fatal or f'see the {self.name} messages above'}\n"
                                  + "\n".join(f"  {self.name}: {line}" for line in self.recent))
            backoff = min(backoff * 2, 10.0) if lived < self.quick_seconds else 0.5
            log.warning("%s exited with code %s; restarting in %.1fs", self.name, code, backoff)
            await asyncio.sleep(backoff)
            self.on_restart()

    async def _read_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            if m := GUARDIAN_STARTED.match(text):
                self.on_event(Event(self.started, source="serve",
                                    detail={"pid": int(m[1]), "guardian": process.pid}))
                continue
            self.recent.append(text)
            log.debug("%s: %s", self.name, text)
            event = self.on_line(text)
            if event is not None:
                self.on_event(event)
            if self._unusable is None and (reason := self.unusable(text)) is not None:
                self._unusable = reason
                process.terminate()  # the guardian stops the program; the loop then reads its last lines

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopping = True
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
