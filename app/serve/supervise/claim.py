"""One serve per output directory: the claim a starting leader makes and the record it keeps.

A serve refuses to start while another runs on the same output directory, and stops what a killed
one left behind (its recorded dnsmasq, or any dnsmasq whose command line names this directory's
config). The record itself is `serve.json` (`app.status.serving`), which `teardown` reads.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from app import process
from app.layout import DNSMASQ_CONF, RUN
from app.serve.errors import ServeError
from app.serve.supervise.dnsmasq import TFTP_ONLY_CONF
from app.status import serving

log = logging.getLogger("bootstrap_node.serve")


def claim(output: Path) -> None:
    """Make `output` ours, or raise ServeError naming the serve that holds it."""
    previous = serving.read(output)
    if previous is not None and previous.serve.matches() and previous.serve.pid != os.getpid():
        raise ServeError(f"{output} is already served by pid {previous.serve.pid} "
                         f"({previous.url}); stop it with `bootstrap-node teardown`")
    if previous is not None and serving.stop_orphan_dnsmasq(previous):
        log.warning("stopped the dnsmasq left running by a serve that was killed (pid %d)", previous.dnsmasq.pid)
    for conf in (output / DNSMASQ_CONF, output / RUN / TFTP_ONLY_CONF):
        for pid in process.with_argument(f"--conf-file={conf}"):
            if pid != os.getpid() and process.stop(pid, timeout=5.0):
                log.warning("stopped a stale dnsmasq for %s (pid %d)", output, pid)


def record(output: Path, url: str, dnsmasq_pid: int | None = None) -> None:
    """Write serve.json: this process and its dnsmasq, as exact process identities."""
    me = process.identity(os.getpid())
    child = process.identity(dnsmasq_pid) if dnsmasq_pid else None
    serving.write(output, serving.ServeState(me, url, str(output), child))


def release(output: Path) -> None:
    serving.remove(output)
