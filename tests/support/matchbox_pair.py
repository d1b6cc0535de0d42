"""Real Matchbox and `serve --matchbox-data --strict-matchbox` side by side on one data dir, as
processes on loopback, and one request asked of both. Matchbox gets a copy of the data dir (its
-data-path) and an empty -assets-path; ours reads the original."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO
from tests.support.processes import free_port, wait_for


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes

    def comparable(self) -> tuple:
        """Ignition (a JSON 200) compares as JSON: key order and spacing are no client's concern, and
        gzip'd contents by what they decompress to (Go's deflate and zlib pick different, equally
        valid streams; whether a file is gzip'd at all still counts). /metadata compares as a set of
        lines: Matchbox prints them in Go's random map order."""
        if self.status == 200 and self.content_type == "application/json" and self.body:
            return self.status, self.content_type, _gunzipped(json.loads(self.body))
        if self.status == 200 and self.content_type == "plain/text":
            return self.status, self.content_type, sorted(self.body.splitlines())
        return self.status, self.content_type, self.body


def _gunzipped(value):
    if isinstance(value, dict):
        if value.get("compression") == "gzip" and str(value.get("source", "")).startswith("data:;base64,"):
            payload = gzip.decompress(base64.b64decode(value["source"].split(",", 1)[1]))
            value = {**value, "source": ("gunzipped", payload)}
        return {k: _gunzipped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_gunzipped(v) for v in value]
    return value


def ask(base: str, method: str, path: str) -> Answer:
    request = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return Answer(r.status, r.headers.get("Content-Type", ""), r.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.headers.get("Content-Type", ""), exc.read())


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(argv: list[str], port: int, log: Path, what: str) -> subprocess.Popen:
    out = log.open("wb")
    proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    wait_for(lambda: proc.poll() is not None or _listening(port), what=f"{what} to listen")
    if proc.poll() is not None:
        raise AssertionError(f"{what} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def side_by_side(matchbox: Path, data: Path, scratch: Path):
    """Yields (matchbox_url, ours_url) for `data`, both servers running until the block ends."""
    copy, assets, out = scratch / "matchbox-data", scratch / "matchbox-assets", scratch / "ours-output"
    shutil.copytree(data, copy)
    assets.mkdir()
    out.mkdir()
    mb_port, our_port, tftp_port = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    procs = []
    try:
        procs.append(_start([str(matchbox), "-address", f"127.0.0.1:{mb_port}", "-data-path", str(copy),
                             "-assets-path", str(assets), "-log-level", "error"],
                            mb_port, scratch / "matchbox.log", "matchbox"))
        # --matchbox-data-with-secrets: the data dir may hold the appliance's own tree, keys included,
        # served to loopback only (as Matchbox serves it, to anyone who asks).
        procs.append(_start([sys.executable, "-m", "app", "--output", str(out), "serve", "--matchbox-data",
                             str(data), "--matchbox-data-with-secrets", "--strict-matchbox", "--listen", f"127.0.0.1:{our_port}",
                             "--dhcp", "none", "--tftp", "none", "--tftp-port", str(tftp_port),
                             "--assets", str(assets), "--bind", "address"],
                            our_port, scratch / "ours.log", "serve --matchbox-data"))
        yield f"http://127.0.0.1:{mb_port}", f"http://127.0.0.1:{our_port}"
    finally:
        for proc in procs:
            _stop(proc)
