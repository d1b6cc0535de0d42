"""Running the app as a process: free ports, the CLI, a `serve` on loopback, polling with a deadline."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.paths import EXAMPLE, REPO


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, capture_output=True, text=True, **kw)


def wait_for(predicate, timeout: float = 20.0, what: str = "condition", interval: float = 0.05):
    """Poll until `predicate()` is truthy, every `interval` seconds; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def stop(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_serve(out: Path, config: Path = EXAMPLE) -> tuple[subprocess.Popen, str, int]:
    """serve `out` (generated from `config`), its assets (<out>/../assets) completed with stand-ins."""
    from tests.support.assets import serve_options
    http_port, tftp_port = free_port(), free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--output", str(out), "serve", "--listen", f"127.0.0.1:{http_port}",
         "--dhcp", "none", "--tftp", "builtin", "--tftp-port", str(tftp_port),
         *serve_options(out.parent / "assets", config), "--log-format", "json",
         "--bind", "address"],  # loopback has no neighbour table: bind machines by address
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{http_port}"
    wait_for(lambda: (out / "serve.json").exists() or proc.poll() is not None, what="serve.json")
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc, url, tftp_port
