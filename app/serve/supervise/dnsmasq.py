"""dnsmasq as a supervised child: proxy DHCP + TFTP, its log turned into node events.

dnsmasq runs in the foreground and logs to stderr; each line is parsed. If it dies it is
restarted with backoff, and after `max_quick_deaths` deaths in a row within `quick_seconds` of
starting, serve gives up with dnsmasq's own last words. dnsmasq runs under `guardian.py`, which dies
with us even when we are killed with SIGKILL and takes dnsmasq with it (dnsmasq's own parent-death
signal would not survive its drop to user nobody): no orphan dnsmasq on any exit path.
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
from pathlib import Path

from app.atomic import atomic_write
from app.events import Event, EventKind, Phase
from app.layout import DNSMASQ_CONF, RUN
from app.serve.errors import ServeError
from app.serve.kernel.neighbours import link_mac

log = logging.getLogger("bootstrap_node.dnsmasq")
MAC = r"([0-9a-f]{2}(?::[0-9a-f]{2}){5})"
IP = r"(\d+\.\d+\.\d+\.\d+)"
GUARDIAN_STARTED = re.compile(r"guardian: dnsmasq pid (\d+)$")  # guardian.py's first line
TFTP_ONLY_CONF = "dnsmasq-tftp.conf"  # run/: the generated config without DHCP, for --dhcp none


class DnsmasqFailed(Exception):
    """dnsmasq cannot run; the message says why and what to do."""


class LogParser:
    """dnsmasq `log-dhcp` lines → events. Lines of one exchange share a transaction id; TFTP lines
    name only the client's IP, so IP → MAC is learnt from the DHCP lines."""

    def __init__(self, neighbour: Callable[[str], str | None] | None = None) -> None:
        self.xid_mac: dict[str, str] = {}
        self.ip_mac: dict[str, str] = {}
        self.neighbour = neighbour or link_mac

    def feed(self, line: str) -> Event | None:
        line = line.strip()
        if re.search(r"^dnsmasq\[\d+\]: started, version", line):
            # dnsmasq logs this after binding its sockets: from here on it answers.
            return Event(EventKind.DNSMASQ_READY, source="dnsmasq", message=line.split(": ", 1)[1])
        if m := re.search(r"dnsmasq-dhcp[^:]*: (\d+) (.*)$", line):
            return self._dhcp(m[1], m[2])
        if m := re.search(r"dnsmasq-tftp[^:]*: sent (\S+) to " + IP, line):
            mac = self.ip_mac.get(m[2]) or self.neighbour(m[2]) or ""
            return Event(Phase.TFTP, mac=mac, source="dnsmasq", message=f"sent {Path(m[1]).name}",
                         detail={"file": m[1], "ip": m[2]})
        if m := re.search(r"dnsmasq-tftp[^:]*: (.*)$", line):
            return Event(EventKind.TFTP_ERROR if "not found" in m[1] or "error" in m[1] else "dnsmasq",
                         source="dnsmasq", message=m[1])
        return None

    def _dhcp(self, xid: str, rest: str) -> Event | None:
        if m := re.match(r"(?:PXE|DHCP\w*)\((\S+)\)\s+(?:" + IP + r"\s+)?" + MAC + r"\s*(.*)$", rest):
            iface, ip, mac, what = m[1], m[2], m[3], m[4]
            self.xid_mac[xid] = mac
            if ip:
                self.ip_mac[ip] = mac
            return Event(Phase.DHCP, mac=mac, source="dnsmasq", message=rest,
                         detail={"interface": iface, **({"ip": ip} if ip else {}), "answer": what})
        if m := re.match(r"bootfile name: (\S+)", rest):
            return Event(Phase.DHCP, mac=self.xid_mac.get(xid, ""), source="dnsmasq",
                         message=f"boot file {m[1]}", detail={"bootfile": m[1]})
        return None


def diagnose(lines: list[str]) -> str:
    text = "\n".join(lines)
    if "TFTP directory" in text and "inaccessible" in text:
        return ("dnsmasq drops root and runs as user nobody, which cannot read the tftp/ directory: make the "
                "output directory and its parents world-searchable (chmod o+x) and tftp/ readable")
    if "Address already in use" in text:
        return ("a port dnsmasq needs (67 DHCP, 69 TFTP or 4011 proxy DHCP) is taken: another DHCP or "
                "TFTP server runs on this host (stop it, or use --dhcp none / --tftp builtin|none)")
    if "Permission denied" in text or "Operation not permitted" in text:
        return ("dnsmasq lacks privileges for ports 67/69/4011: run as root, or the container with "
                "--net=host --privileged")
    if "unknown interface" in text or "no such device" in text.lower():
        return "bootstrap.interface does not exist on this host (check `ip link`)"
    return "see dnsmasq's messages above"


class Supervisor:
    def __init__(self, conf: Path, on_event: Callable[[Event], None], *, binary: str = "dnsmasq",
                 max_quick_deaths: int = 5, quick_seconds: float = 10.0, on_restart: Callable[[], None] = lambda: None,
                 on_started: Callable[[int], None] = lambda pid: None):
        self.conf, self.on_event, self.binary = conf, on_event, binary
        self.max_quick_deaths, self.quick_seconds, self.on_restart = max_quick_deaths, quick_seconds, on_restart
        self.on_started = on_started  # serve records the child in serve.json, to stop it if serve is killed
        self.process: asyncio.subprocess.Process | None = None
        self.parser = LogParser()
        self.recent: deque[str] = deque(maxlen=20)
        self._stopping = False

    def command(self) -> list[str]:
        dnsmasq = [shutil.which(self.binary) or self.binary, "--keep-in-foreground", "--log-facility=-",
                   f"--conf-file={self.conf}", "--pid-file="]  # no pid file: we hold the pid ourselves
        return [sys.executable, "-m", "app.serve.supervise.guardian", "--", *dnsmasq]

    async def run(self) -> None:
        """Run until stop(); raise DnsmasqFailed when dnsmasq keeps dying."""
        if shutil.which(self.binary) is None:
            raise DnsmasqFailed(f"{self.binary} not found: install dnsmasq (Debian: dnsmasq-base), "
                                "or run with --dhcp none --tftp builtin")
        quick_deaths, backoff = 0, 0.5
        while not self._stopping:
            began = time.monotonic()
            self.process = await asyncio.create_subprocess_exec(
                *self.command(), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT, env={**os.environ, "BOOTSTRAP_GUARDIAN_PARENT": str(os.getpid())})
            self.on_started(self.process.pid)  # the guardian: stopping it stops dnsmasq
            await self._read_log(self.process)
            code = await self.process.wait()
            if self._stopping:
                return
            lived = time.monotonic() - began
            self.on_event(Event(EventKind.DNSMASQ_EXITED, source="serve",
                                message=f"exit code {code} after {lived:.1f}s", detail={"code": code}))
            quick_deaths = quick_deaths + 1 if lived < self.quick_seconds else 1
            fatal = diagnose(list(self.recent))
            if quick_deaths >= self.max_quick_deaths or (lived < 2 and fatal != diagnose([])):
                raise DnsmasqFailed(f"dnsmasq exited with code {code} {quick_deaths} time(s) in a row: {fatal}\n"
                                    + "\n".join(f"  dnsmasq: {line}" for line in self.recent))
            backoff = min(backoff * 2, 10.0) if lived < self.quick_seconds else 0.5
            log.warning("dnsmasq exited with code %s; restarting in %.1fs", code, backoff)
            await asyncio.sleep(backoff)
            self.on_restart()

    async def _read_log(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            text = line.decode(errors="replace").rstrip()
            if m := GUARDIAN_STARTED.match(text):
                self.on_event(Event(EventKind.DNSMASQ_STARTED, source="serve",
                                    detail={"pid": int(m[1]), "guardian": process.pid}))
                continue
            self.recent.append(text)
            log.debug("%s", text)
            event = self.parser.feed(text)
            if event is not None:
                self.on_event(event)

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


def conf_for(output: Path, dhcp: str) -> Path:
    """The config dnsmasq runs with: generate's own for proxy DHCP, else a TFTP-only copy under run/."""
    conf = output / DNSMASQ_CONF
    if not conf.is_file():
        raise ServeError(f"{conf} not found: run `bootstrap-node generate` first")
    if dhcp == "proxy":
        return conf
    derived = output / RUN / TFTP_ONLY_CONF
    atomic_write(derived, tftp_only_conf(conf.read_text()).encode(), 0o644, skip_if_same=True)
    return derived


def tftp_only_conf(full: str) -> str:
    """The generated dnsmasq.conf without its DHCP lines, for `--dhcp none --tftp dnsmasq`."""
    keep = [line for line in full.splitlines()
            if not line.startswith(("dhcp-", "pxe-", "log-dhcp"))]
    return "\n".join(keep) + "\n"
