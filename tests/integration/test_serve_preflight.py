"""`serve`'s preflight (the one `init` has): it refuses to start, binding nothing and starting no child,
when a file the nodes fetch is missing from --assets, naming each one and how to fetch them;
`--skip-preflight` is the development escape hatch, and a foreign Matchbox tree has nothing to check."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.support.assets import standin_assets
from tests.support.paths import EXAMPLE, REPO, flatcar_version_of
from tests.support.processes import cli, free_port, wait_for

FLATCAR = ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz",
           "flatcar_production_image.bin.bz2", "flatcar_production_image.bin.bz2.sig")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A tree serve would serve with its built-in TFTP server: without the preflight, it would start."""
    root = tmp_path_factory.mktemp("preflight")
    (root / "ipxe").mkdir()
    (root / "ipxe" / "undionly.kpxe").write_bytes(b"BIOS iPXE stand-in")
    out = root / "output"
    done = cli("--config", str(EXAMPLE), "--output", str(out), "--templates", "/nonexistent", "generate",
               "--assets", "/nonexistent", "--ipxe-dir", str(root / "ipxe"))
    assert done.returncode == 0, done.stderr
    return out


def refused(argv: list[str], out: Path) -> subprocess.CompletedProcess:
    """Run serve; it must exit on its own. One that starts serving instead is stopped and fails the test."""
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: proc.poll() is not None or (out / "serve.json").exists(), 60, "serve to refuse or start")
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        pytest.fail("serve started although files the nodes fetch are missing")
    stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def serve_argv(out: Path, assets: Path, http: int, tftp: int | None, *extra: str) -> list[str]:
    """serve on loopback; with `tftp`, its built-in TFTP server on that port too (the tree has no iPXE)."""
    tftp_options = ["--tftp", "builtin", "--tftp-port", str(tftp)] if tftp else ["--tftp", "none"]
    return [sys.executable, "-m", "app", "--config", str(EXAMPLE), "--output", str(out), "serve", "--listen",
            f"127.0.0.1:{http}", "--dhcp", "none", *tftp_options, "--assets", str(assets), "--bind", "address",
            *extra]


def free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_serve_names_each_missing_file_and_binds_nothing(generated, tmp_path):
    assets = standin_assets(tmp_path / "assets")
    version = flatcar_version_of()
    for name in FLATCAR:
        (assets / "flatcar" / version / name).unlink()
    (assets / "sysext" / "kubernetes-v1.36.3-x86-64.raw").unlink()
    http, tftp = free_port(), free_port(socket.SOCK_DGRAM)
    done = refused(serve_argv(generated, assets, http, tftp), generated)
    assert done.returncode == 1, done.stderr
    assert "serve: the nodes could not install: 5 file(s) they fetch are not in" in done.stderr
    for name in FLATCAR:
        assert f"{assets}/flatcar/{version}/{name} is missing" in done.stderr
    assert "kubernetes-v1.36.3-x86-64.raw is not in" in done.stderr
    assert f"bootstrap-node assets fetch {assets}" in done.stderr and "--skip-preflight" in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing bound, nothing started, nothing recorded: the ports are free and the tree untouched.
    assert free(http, socket.SOCK_STREAM) and free(tftp, socket.SOCK_DGRAM)
    assert not (generated / "serve.json").exists() and not (generated / "events.jsonl").exists()


def test_an_empty_or_absent_assets_directory_is_refused_too(generated, tmp_path):
    for assets in (tmp_path / "absent", tmp_path):
        done = refused(serve_argv(generated, assets, free_port(), free_port(socket.SOCK_DGRAM)), generated)
        assert done.returncode == 1 and "file(s) they fetch are not in" in done.stderr, done.stderr
        assert f"{assets}/flatcar/{flatcar_version_of()}/flatcar_production_pxe.vmlinuz is missing" in done.stderr


def test_serve_needs_the_cluster_yaml_it_checks_against(generated, tmp_path):
    done = cli("--config", str(tmp_path / "nope.yaml"), "--output", str(generated), "serve", "--listen",
               f"127.0.0.1:{free_port()}", "--dhcp", "none", "--tftp", "none", timeout=60)
    assert done.returncode == 2 and "pass --config FILE" in done.stderr, done.stderr


def test_skip_preflight_serves_without_the_assets(generated, tmp_path):
    http = free_port()
    proc = subprocess.Popen(serve_argv(generated, tmp_path, http, None, "--skip-preflight"), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (generated / "serve.json").exists() or proc.poll() is not None, 60, "serve to start")
        assert proc.poll() is None, proc.stderr.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/boot.ipxe") as r:
            assert r.read().startswith(b"#!ipxe")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0
