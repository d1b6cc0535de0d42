"""dnsmasq as a supervised child: proxy DHCP + TFTP, its log turned into node events.

dnsmasq runs in the foreground and logs to stderr; each line is parsed. Restarts, giving up and the
guardian (dnsmasq's own parent-death signal would not survive its drop to user nobody) are
child.Child's: no orphan dnsmasq on any exit path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from app.atomic_file import atomic_write
from app.events import Event, EventKind, Phase
from app.layout import DNSMASQ_CONF, RUN
from app.serve.errors import ServeError
from app.serve.kernel.neighbours import link_mac
from app.serve.supervise.child import Child, ChildFailed

log = logging.getLogger("bootstrap_node.dnsmasq")
MAC = r"([0-9a-f]{2}(?::[0-9a-f]{2}){5})"
IP = r"(\d+\.\d+\.\d+\.\d+)"
TFTP_ONLY_CONF = "dnsmasq-tftp.conf"  # run/: the generated config without DHCP, for --dhcp none


DnsmasqFailed = ChildFailed  # the name callers know
# Exchanges and addresses the parser remembers, newest kept: every spoofed DISCOVER brings a new
# transaction id and MAC, and the parser must not grow with them.
MAX_REMEMBERED = 4096

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
            return Event(EventKind.TFTP_ERROR if "not found" in m[1] or "error" in m[1] else EventKind.DNSMASQ,
                         source="dnsmasq", message=m[1])
        return None

    def _dhcp(self, xid: str, rest: str) -> Event | None:
        if m := re.match(r"(?:PXE|DHCP\w*)\((\S+)\)\s+(?:" + IP + r"\s+)?" + MAC + r"\s*(.*)$", rest):
            iface, ip, mac, what = m[1], m[2], m[3], m[4]
            _remember(self.xid_mac, xid, mac)
            if ip:
                _remember(self.ip_mac, ip, mac)
            return Event(Phase.DHCP, mac=mac, source="dnsmasq", message=rest,
                         detail={"interface": iface, **({"ip": ip} if ip else {}), "answer": what})
        if m := re.match(r"bootfile name: (\S+)", rest):
            return Event(Phase.DHCP, mac=self.xid_mac.get(xid, ""), source="dnsmasq",
                         message=f"boot file {m[1]}", detail={"bootfile": m[1]})
        return None


def _remember(found: dict[str, str], key: str, mac: str) -> None:
    found.pop(key, None)
    found[key] = mac  # dicts keep insertion order: the first key is the oldest
    if len(found) > MAX_REMEMBERED:
        del found[next(iter(found))]


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


class Supervisor(Child):
    """dnsmasq in the foreground, logging to stderr (see child.Child for restarts and the guardian)."""

    name = "dnsmasq"
    started, exited = EventKind.DNSMASQ_STARTED, EventKind.DNSMASQ_EXITED
    install_hint = "install dnsmasq (Debian: dnsmasq-base), or run with --dhcp none --tftp builtin"

    def __init__(self, conf: Path, on_event: Callable[[Event], None], *, binary: str = "dnsmasq", **kwargs):
        super().__init__(on_event, binary=binary, **kwargs)
        self.conf = conf
        self.parser = LogParser()

    def program(self, binary: str) -> list[str]:
        return [binary, "--keep-in-foreground", "--log-facility=-", f"--conf-file={self.conf}",
                "--pid-file="]  # no pid file: we hold the pid ourselves

    def on_line(self, text: str) -> Event | None:
        return self.parser.feed(text)

    def diagnose(self, lines: list[str]) -> str | None:
        said = diagnose(lines)
        return None if said == diagnose([]) else said


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
