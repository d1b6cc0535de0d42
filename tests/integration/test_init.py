"""`init --yes` end to end: generate, the real serve (no dnsmasq: --dhcp none --tftp none), the
health gate against the TLS API-server stand-in, the kubeconfig, and nothing left running."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.support.apiserver import StandInAPIServer, serving_cert
from tests.support.assets import standin_assets
from tests.support.paths import EXAMPLE, REPO, flatcar_version_of
from tests.support.processes import free_port, wait_for

NAMES = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"]


@pytest.fixture
def output(tmp_path):
    out = tmp_path / "output"
    gen = subprocess.run([sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(out),
                          "--templates", "/nonexistent", "generate", "--assets", "/nonexistent"],
                         cwd=REPO, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    return out


def start_init(output, api_url: str, port: int) -> subprocess.Popen:
    from tests.support.gate import make_templates
    templates = make_templates(output.parent / "templates")
    return subprocess.Popen(
        [sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(output), "--templates",
         str(templates), "init", "--yes", "--listen", f"127.0.0.1:{port}", "--dhcp", "none", "--tftp", "none",
         "--assets", str(standin_assets(output.parent / "assets", EXAMPLE)), "--ipxe-dir", "/nonexistent",
         "--server", api_url, "--poll", "0.2",
         "--api-timeout", "30", "--nodes-timeout", "30",
         "--bind", "address"],  # loopback has no neighbour table
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def port_closed(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_init_yes_serves_waits_writes_kubeconfig_and_leaves_nothing(output, tmp_path):
    creds = output / "credentials"
    crt, key = serving_cert(creds / "ca.crt", creds / "ca.key", tmp_path)
    port = free_port()
    with StandInAPIServer(creds / "ca.crt", crt, key, {n: 3.0 for n in NAMES}) as api:
        proc = start_init(output, api.url, port)
        wait_for(lambda: (output / "serve.json").exists() or proc.poll() is not None, what="serve to start")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ipxe?mac=52:54:00:00:00:21") as r:
            assert b"flatcar_production_pxe.vmlinuz" in r.read()  # serving while waiting
        code = proc.wait(timeout=60)
    stdout, stderr = proc.communicate()
    assert code == 0, stderr
    assert "Power on your nodes now" in stdout and "all 5 nodes Ready" in stdout
    kubeconfig = output / "kubeconfig"
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    assert not (output / "serve.json").exists() and port_closed(port)
    kinds = [json.loads(line)["kind"] for line in (output / "events.jsonl").read_text().splitlines()]
    assert kinds.index("serve-started") < kinds.index("api-ready") < kinds.index("serve-stopped")


def test_init_ctrl_c_stops_everything(output, tmp_path):
    creds = output / "credentials"
    crt, key = serving_cert(creds / "ca.crt", creds / "ca.key", tmp_path)
    port = free_port()
    with StandInAPIServer(creds / "ca.crt", crt, key, {n: None for n in NAMES}) as api:
        proc = start_init(output, api.url, port)
        wait_for(lambda: (output / "serve.json").exists() or proc.poll() is not None, what="serve to start")
        wait_for(lambda: "api-ready" in (output / "events.jsonl").read_text(), what="the gate to reach the API")
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 130, proc.stderr.read()
    assert not (output / "serve.json").exists() and port_closed(port)
    assert not (output / "kubeconfig").exists()


def test_init_refuses_missing_assets_before_anything_starts(tmp_path):
    """No serve, no power-on, no output: each missing file named, and how to fetch them."""
    assets = standin_assets(tmp_path / "assets", EXAMPLE)
    (assets / "flatcar" / flatcar_version_of() / "flatcar_production_image.bin.bz2.sig").unlink()
    (assets / "sysext" / "kubernetes-v1.36.3-x86-64.raw").unlink()
    out = tmp_path / "output"
    done = subprocess.run([sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(out), "init",
                           "--yes", "--assets", str(assets), "--dhcp", "none", "--tftp", "none"],
                          cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 1
    assert "2 file(s) they fetch are not in" in done.stderr and "nothing was started or powered on" in done.stderr
    assert f"{assets}/flatcar/{flatcar_version_of()}/flatcar_production_image.bin.bz2.sig is missing" in done.stderr
    assert "kubernetes-v1.36.3-x86-64.raw is not in" in done.stderr
    assert f"bootstrap-node assets fetch {assets}" in done.stderr
    assert not out.exists()
