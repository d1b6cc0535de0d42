"""`bootstrap-node serve` as a real process: built-in TFTP fetched with tftpy's client, SIGTERM and
`teardown` stop it cleanly, and the state file comes and goes with it."""

from __future__ import annotations

import json
import signal
import socket
import urllib.request
from pathlib import Path

import pytest
import tftpy

from tests.support.assets import serve_options
from tests.support.paths import EXAMPLE, flatcar_version_of
from tests.support.processes import cli, free_port, start_serve, wait_for
from tests.support.serve import bearer, credential_in


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    ipxe = root / "ipxe"
    ipxe.mkdir()
    (ipxe / "undionly.kpxe").write_bytes(b"BIOS iPXE stand-in " * 100)
    out = root / "output"
    result = cli("--config", str(EXAMPLE), "--output", str(out), "--templates", "/nonexistent", "generate",
                 "--ipxe-dir", str(ipxe), "--assets", str(root / "assets"))
    assert result.returncode == 0, result.stderr
    (root / "assets" / "flatcar" / flatcar_version_of()).mkdir(parents=True)
    (root / "assets" / "flatcar" / flatcar_version_of() / "flatcar_production_pxe.vmlinuz").write_bytes(b"k" * 4096)
    return out





def test_serve_answers_http_and_tftp_then_stops_on_sigterm(generated, tmp_path):
    proc, url, tftp_port = start_serve(generated)
    try:
        state = json.loads((generated / "serve.json").read_text())
        assert state["pid"] == proc.pid and state["url"] == url
        with urllib.request.urlopen(f"{url}/boot.ipxe") as r:
            assert r.read().startswith(b"#!ipxe\nchain ipxe?")
        with urllib.request.urlopen(f"{url}/assets/flatcar/{flatcar_version_of()}/flatcar_production_pxe.vmlinuz") as r:
            assert r.read() == b"k" * 4096
        client = tftpy.TftpClient("127.0.0.1", tftp_port)
        client.download("undionly.kpxe.0", str(tmp_path / "got"), timeout=5)
        assert (tmp_path / "got").read_bytes() == b"BIOS iPXE stand-in " * 100
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    stderr = proc.stderr.read().decode()
    assert code == 0, stderr
    assert not (generated / "serve.json").exists()
    assert all(json.loads(line)["level"] for line in stderr.splitlines() if line.startswith("{"))
    events = [json.loads(line) for line in (generated / "events.jsonl").read_text().splitlines()]
    assert events[-1]["kind"] == "serve-stopped"


def test_teardown_stops_it_and_is_idempotent(generated):
    proc, _, _ = start_serve(generated)
    result = cli("--output", str(generated), "teardown")
    assert result.returncode == 0 and f"stopped serve (pid {proc.pid})" in result.stdout
    assert proc.wait(timeout=5) == 0
    again = cli("--output", str(generated), "teardown")
    assert again.returncode == 0 and "nothing running" in again.stdout


def test_serve_refuses_a_taken_port(generated):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = cli("--output", str(generated), "serve", "--listen", f"127.0.0.1:{port}", "--dhcp", "none",
                     "--tftp", "none", *serve_options(generated.parent / "assets"), timeout=30)
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_without_generate_says_so(tmp_path):
    result = cli("--output", str(tmp_path), "serve", "--listen", "127.0.0.1:1",
                 *serve_options(tmp_path / "assets"), timeout=30)
    assert result.returncode == 1 and "run `bootstrap-node generate` first" in result.stderr


def test_reinstall_reaches_a_running_serve(generated):
    proc, url, _ = start_serve(generated)
    mac = "52:54:00:00:00:21"
    try:
        urllib.request.urlopen(f"{url}/ipxe?mac={mac}").read()  # PXE opens the install window
        with urllib.request.urlopen(f"{url}/ignition?mac={mac}") as r:
            credential = credential_in(r.read())
        req = urllib.request.Request(f"{url}/events", data=json.dumps({"mac": mac, "phase": "installed"}).encode(),
                                     headers={"Content-Type": "application/json", **bearer(credential)},
                                     method="POST")
        urllib.request.urlopen(req).read()
        with urllib.request.urlopen(f"{url}/ipxe?mac={mac}") as r:
            assert r.read().decode().splitlines()[-1] == "exit"
        result = cli("--config", str(EXAMPLE), "--output", str(generated), "reinstall", "worker-1")
        assert result.returncode == 0, result.stderr

        def installer_again():
            with urllib.request.urlopen(f"{url}/ipxe?mac={mac}") as r:
                return b"flatcar_production_pxe.vmlinuz" in r.read()
        wait_for(installer_again, 10, "serve to take the reinstall")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_second_serve_on_the_same_output_is_refused_and_leaves_the_first_alone(generated):
    proc, url, _ = start_serve(generated)
    try:
        before = (generated / "serve.json").read_text()
        events_before = (generated / "events.jsonl").read_text().count('"serve-stopped"')
        second = cli("--output", str(generated), "serve", "--listen", f"127.0.0.1:{free_port()}", "--dhcp", "none",
                     "--tftp", "none", *serve_options(generated.parent / "assets"), timeout=30)
        assert second.returncode == 1 and f"already served by pid {proc.pid}" in second.stderr
        assert (generated / "serve.json").read_text() == before  # teardown still finds the first
        assert (generated / "events.jsonl").read_text().count('"serve-stopped"') == events_before
        with urllib.request.urlopen(f"{url}/boot.ipxe") as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
