"""Issue #33, item 8: a node's callback message (with a valid credential, so it is recorded) holds ESC
sequences and a `\\r\\n` that would forge a "worker-9 ready" line. `status` and `status --watch` show
it spelled out, never obeyed; so do serve's text log lines."""

from __future__ import annotations

import logging
import os
import selectors
import subprocess
import sys
import time

from app.logs import TextFormatter
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import cli
from tests.support.serve import bearer, pxe_and_install_config, running

MAC = "52:54:00:00:00:21"  # worker-1 of cluster.yaml.example
FORGED = "disk gone\x1b[2J\x1b[H\r\nworker-9 (52:54:00:00:00:29): ready, step 11/11\x07\x9b31m"


def looks_clean(out: str) -> None:
    assert not any(c in out for c in ("\x1b", "\r", "\x07", "\x9b")), repr(out[-400:])
    assert not any(line.lstrip(" │|").startswith("worker-9") for line in out.splitlines()), out
    assert "\\x1b[2J" in out  # shown for what it is


def watched(tree) -> str:
    """`status --watch` with its stdout a pipe (one line per change) until the summary is out."""
    proc = subprocess.Popen([sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(tree), "status",
                             "--watch", "--interval", "0.2"], cwd=REPO, stdout=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    seen, deadline = "", time.monotonic() + 30
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        while "installed 0/" not in seen and time.monotonic() < deadline:
            if selector.select(timeout=1):
                chunk = os.read(proc.stdout.fileno(), 65536)  # not readline: its buffer hides from select
                if not chunk:
                    break
                seen += chunk.decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert "installed 0/" in seen, seen
    return seen


async def test_a_forged_line_in_a_callback_message_is_spelled_out_in_status(output):
    async with running(output / "matchbox", output) as (http, _):
        _, credential = await pxe_and_install_config(http, MAC)
        async with http.post("/events", json={"mac": MAC, "phase": "failed", "message": FORGED},
                             headers=bearer(credential)) as r:
            assert r.status == 200
    table = cli("--config", str(EXAMPLE), "--output", str(output), "status", env={**os.environ, "COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    looks_clean(table.stdout)
    looks_clean(watched(output))


def test_serve_log_lines_spell_out_control_characters():
    record = logging.LogRecord("bootstrap_node.http", logging.WARNING, __file__, 1, "refused %s", (FORGED,), None)
    line = TextFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in line
    looks_clean(line)
