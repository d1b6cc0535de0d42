"""Network namespaces for tests that need a real L2 network: made here, removed by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


def require_root_tools(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, ports 67/69/4011); CI runs it as root")
    for tool in ("ip", *tools):
        if shutil.which(tool) is None:
            pytest.skip(f"needs `{tool}` (Debian: see .ci/run's package list)")


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


class Pair:
    """Two namespaces joined by a veth pair: `server` holds server_ip, `client` holds client_ip."""

    def __init__(self, tag: str, server_ip: str, client_ip: str, prefix: int = 24):
        base = f"bn{os.getpid() % 100000}{tag}"
        self.server, self.client = f"{base}s", f"{base}c"
        self.server_if, self.client_if = "srv0", "cli0"
        self.server_ip, self.client_ip = server_ip, client_ip
        self.prefix = prefix

    def __enter__(self) -> Pair:
        for ns in (self.server, self.client):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "bnvethtmp", "type", "veth", "peer", "name", "bnvethtmp2")
        sh("ip", "link", "set", "bnvethtmp", "netns", self.server)
        sh("ip", "link", "set", "bnvethtmp2", "netns", self.client)
        for ns, old, new, ip in ((self.server, "bnvethtmp", self.server_if, self.server_ip),
                                 (self.client, "bnvethtmp2", self.client_if, self.client_ip)):
            sh("ip", "-n", ns, "link", "set", old, "name", new)
            sh("ip", "-n", ns, "addr", "add", f"{ip}/{self.prefix}", "dev", new)
            sh("ip", "-n", ns, "link", "set", new, "up")
        return self

    def __exit__(self, *exc) -> None:
        for ns in (self.server, self.client):
            sh("ip", "netns", "del", ns, check=False)

    def python(self, ns: str, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, sys.executable, "-c", code, check=False, timeout=timeout)
