"""A provisioning LAN of network namespaces: the appliance's namespace holds a bridge with its
address; each machine is a namespace of its own on that bridge, with the MAC and address a test
gives it, and can take another machine's MAC and address (what a spoofer on the LAN does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.root.netns import sh
from tests.support.assets import serve_options
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import wait_for


class Lan:
    def __init__(self, tag: str, server_ip: str, prefix: int = 24):
        self.base = f"bn{os.getpid() % 100000}{tag}"
        self.server = f"{self.base}s"
        self.server_ip, self.prefix = server_ip, prefix
        self.machines: dict[str, str] = {}  # name -> namespace

    def __enter__(self) -> Lan:
        sh("ip", "netns", "add", self.server)
        sh("ip", "-n", self.server, "link", "set", "lo", "up")
        sh("ip", "-n", self.server, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.server, "addr", "add", f"{self.server_ip}/{self.prefix}", "dev", "br0")
        sh("ip", "-n", self.server, "link", "set", "br0", "up")
        return self

    def add(self, name: str, mac: str, ip: str) -> str:
        ns = f"{self.base}{len(self.machines)}"
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "bnlantmp", "type", "veth", "peer", "name", "bnlantmp2")
        sh("ip", "link", "set", "bnlantmp", "netns", self.server)
        sh("ip", "-n", self.server, "link", "set", "bnlantmp", "name", f"p{len(self.machines)}")
        sh("ip", "-n", self.server, "link", "set", f"p{len(self.machines)}", "master", "br0", "up")
        sh("ip", "link", "set", "bnlantmp2", "netns", ns)
        sh("ip", "-n", ns, "link", "set", "bnlantmp2", "name", "eth0")
        self.machines[name] = ns
        self.become(name, mac, ip)
        return ns

    def become(self, name: str, mac: str, ip: str) -> None:
        """Machine `name` now sends from `mac` and `ip` (a fresh identity on the wire)."""
        ns = self.machines[name]
        sh("ip", "-n", ns, "link", "set", "eth0", "down")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac)
        sh("ip", "-n", ns, "addr", "flush", "dev", "eth0")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{self.prefix}", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def unplug(self, name: str) -> None:
        sh("ip", "-n", self.machines[name], "link", "set", "eth0", "down")

    def forget_neighbours(self) -> None:
        """The appliance's kernel learns the LAN afresh (what a stale entry's expiry comes to)."""
        sh("ip", "-n", self.server, "neigh", "flush", "dev", "br0")

    def http(self, name: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET `url` from machine `name`: (status, body)."""
        code = ("import sys, urllib.request, urllib.error\n"
                "req = urllib.request.Request(sys.argv[1], headers=dict(h.split(': ', 1) for h in sys.argv[2:]))\n"
                "try:\n    r = urllib.request.urlopen(req, timeout=20); s, b = r.status, r.read()\n"
                "except urllib.error.HTTPError as e:\n    s, b = e.code, e.read()\n"
                "sys.stdout.buffer.write(str(s).encode() + b'\\n' + b)\n")
        args = [f"{k}: {v}" for k, v in (headers or {}).items()]
        run = subprocess.run(["ip", "netns", "exec", self.machines[name], sys.executable, "-c", code, url, *args],
                             capture_output=True, timeout=60)
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        status, _, body = run.stdout.partition(b"\n")
        return int(status), body

    def __exit__(self, *exc) -> None:
        for ns in [*self.machines.values(), self.server]:
            sh("ip", "netns", "del", ns, check=False)


def events(out: Path) -> list[dict]:
    path = out / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@contextmanager
def serving(tag: str, subnet: str, listen: str, prepare: Callable[[Lan], None] = lambda lan: None
            ) -> Iterator[tuple[Lan, Path, Path]]:
    """The example cluster moved to `subnet`.0/24 and generated afresh, its Lan (the appliance at
    `subnet`.2 on br0), and `serve` there as a process (default link binding, no DHCP, no TFTP),
    listening on `listen`; `prepare` runs on the Lan before serve starts. Yields (lan, output, config)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bn-{tag}-", dir="/tmp"))
    config = tmp / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("10.0.0.", f"{subnet}.").replace("interface: eth0", "interface: br0")
                      .replace("api_server_name: api.lab.example.com", ""))
    out = tmp / "output"
    gen = subprocess.run([sys.executable, "-m", "app", "--config", str(config), "--output", str(out),
                          "--templates", "/nonexistent", "generate"], cwd=REPO, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    with Lan(tag, f"{subnet}.2") as lan:
        prepare(lan)
        proc = subprocess.Popen(["ip", "netns", "exec", lan.server, sys.executable, "-m", "app", "--config",
                                 str(config), "--output", str(out), "serve", "--dhcp", "none", "--tftp", "none",
                                 "--listen", listen, *serve_options(tmp / "assets", config)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: any(e["kind"] == "serve-started" for e in events(out)) or proc.poll() is not None,
                     what="serve to start")
            assert proc.poll() is None, proc.stderr.read().decode()
            yield lan, out, config
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
