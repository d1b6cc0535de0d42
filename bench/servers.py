"""The servers under test, each a child process in its own session: ours, nginx, http.server, a
Matchbox-like reference of ours that re-reads every group per request, and real Matchbox where a
binary is given (BENCH_MATCHBOX=/path/to/matchbox; `make bench` sets it to the build of
scripts/matchbox-binary, cached outside the repository, when it is unset)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Child:
    def __init__(self, name: str, argv: list[str], port: int, log: Path, cwd: Path = REPO, env=None):
        self.name, self.port = name, port
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not listen on {port}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User+system CPU of every process in the child's session (nginx has workers)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.proc.pid:  # session id (field 6 of stat, index 3 after the name)
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def ours(work: Path, assets: Path, data_dir: Path, workers: int = 1, with_secrets: bool = False) -> Child:
    """`serve --matchbox-data`; `with_secrets` for a generated tree, whose configs hold keys."""
    port = free_port()
    out = work / f"ours-output-{workers}"
    out.mkdir(exist_ok=True)
    (out / "events.jsonl").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "app", "--output", str(out), "serve", "--dhcp", "none", "--tftp", "none",
            "--listen", f"127.0.0.1:{port}", "--assets", str(assets), "--matchbox-data", str(data_dir),
            # wrk opens all its connections from one address; a rack's machines each have their own
            # (serve's default is 64 per address)
            "--max-per-client", "100000", "--workers", str(workers)]
    if with_secrets:
        argv.append("--matchbox-data-with-secrets")
    return Child("bootstrap-node", argv, port, work / f"ours-{workers}.log")


def ours_with_images(work: Path, assets: Path, layout: Path) -> Child:
    port = free_port()
    return Child("bootstrap-node+images", [sys.executable, str(Path(__file__).parent / "registry_server.py"),
                                           str(assets), str(layout), str(port)], port, work / "ours-images.log")


def nginx(work: Path, root: Path) -> Child:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        raise RuntimeError("nginx not installed (apt-get install nginx-light)")
    port = free_port()
    prefix = work / "nginx"
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(f"""daemon off;
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path {prefix}/tmp; proxy_temp_path {prefix}/tmp; fastcgi_temp_path {prefix}/tmp;
  uwsgi_temp_path {prefix}/tmp; scgi_temp_path {prefix}/tmp;
  server {{ listen 127.0.0.1:{port}; location /assets/ {{ alias {root}/; }} }}
}}
""")
    return Child("nginx", [binary, "-p", str(prefix), "-c", str(conf)], port, work / "nginx.log")


def http_server(work: Path, root: Path) -> Child:
    """Python's http.server, serving /assets/ from the parent of a symlink called assets."""
    port = free_port()
    served = work / "pyhttp"
    served.mkdir(exist_ok=True)
    link = served / "assets"
    if not link.exists():
        link.symlink_to(root)
    return Child("http.server", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                                 str(served), str(port)], port, work / "pyhttp.log")


def reference_matchbox(work: Path, data_dir: Path) -> Child:
    port = free_port()
    return Child("matchbox-like", [sys.executable, str(Path(__file__).parent / "reference_matchbox.py"),
                                   str(data_dir), str(port)], port, work / "reference.log")


def matchbox_binary() -> str | None:
    """Real Matchbox, if BENCH_MATCHBOX names a binary that runs."""
    binary = os.environ.get("BENCH_MATCHBOX")
    return binary if binary and os.access(binary, os.X_OK) else None


def matchbox(work: Path, data_dir: Path, binary: str, assets: Path | None = None) -> Child:
    """Matchbox on the same data dir. `-log-level error`: it warns on every /ignition of a config
    spec newer than its Ignition library knows (it serves it as is), and that logging is not
    what is being compared; ours runs without an access log too."""
    version = subprocess.run([binary, "-version"], capture_output=True, text=True, check=False).stdout.strip()
    port = free_port()
    if assets is None:
        assets = work / "matchbox-assets"
        assets.mkdir(exist_ok=True)
    return Child(f"matchbox {version or '?'}", [binary, "-address", f"127.0.0.1:{port}", "-data-path", str(data_dir),
                                                 "-assets-path", str(assets), "-log-level", "error"],
                 port, work / "matchbox.log")
