"""chronyd as a supervised child: NTP for the nodes from the appliance's own clock, for a site without
a time server the nodes can reach (cluster.yaml `bootstrap.time_server`; `generate` writes its
chrony.conf, and serve runs chronyd when that file is in the tree).

chronyd runs in the foreground (`-d`, its log on stderr) and with `-x`: it never sets this host's
clock, it serves it (`local stratum 10` in the config: a reference even with no source of its own).
Restarts, giving up and the guardian are child.Child's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.events import Event, EventKind
from app.serve.supervise.child import Child


class Chrony(Child):
    name = "chronyd"
    started, exited = EventKind.CHRONYD_STARTED, EventKind.CHRONYD_EXITED
    install_hint = "install chrony (Debian: chrony), or set bootstrap.time_server: false and generate again"

    def __init__(self, conf: Path, on_event: Callable[[Event], None], *, binary: str = "chronyd", **kwargs):
        super().__init__(on_event, binary=binary, **kwargs)
        self.conf = conf

    def program(self, binary: str) -> list[str]:
        # The generated pidfile is <output>/run/chronyd.pid, and a fresh output has no run/ yet: chronyd
        # would refuse to start ("Could not open …/chronyd.pid").
        for line in self.conf.read_text().splitlines():
            if line.split(maxsplit=1)[:1] == ["pidfile"]:
                Path(line.split(maxsplit=1)[1].strip()).parent.mkdir(parents=True, exist_ok=True)
        return [binary, "-d", "-x", "-f", str(self.conf)]

    def unusable(self, text: str) -> str | None:
        # chronyd does not exit when it cannot bind its NTP port: it runs on and serves no one.
        if "Could not open NTP socket" in text:
            return ("it could not open its NTP socket: port 123 is taken by another NTP server on this host, "
                    "or bootstrap.ip is not an address of this host (stop that server, or set "
                    "bootstrap.time_server: false and point network.ntp at it)")
        return None

    def diagnose(self, lines: list[str]) -> str | None:
        text = "\n".join(lines)
        if "Address already in use" in text:
            return ("port 123 (NTP) is taken: another NTP server runs on this host (stop it, or set "
                    "bootstrap.time_server: false and point network.ntp at that server)")
        if "Permission denied" in text or "Operation not permitted" in text:
            return "chronyd lacks privileges for port 123: run as root, or the container with --net=host"
        if "Fatal error" in text:
            return "chronyd refused its configuration or could not start (its messages follow)"
        return None
