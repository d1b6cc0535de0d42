"""Issue #33, item 7: `serve --matchbox-data <output>/matchbox` turned install windows off and gave
cp-1's CA keys to anyone. A Matchbox data dir holding private keys or join tokens is refused (the
appliance's own tree, or a copy of it) unless --matchbox-data-with-secrets says it is meant."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

from tests.support.paths import REPO
from tests.support.processes import free_port, wait_for


def serve(out, data, *extra: str) -> subprocess.CompletedProcess | None:
    """Run serve on `data`; the finished process when it refused, None when it started (then stopped)."""
    proc = subprocess.Popen([sys.executable, "-m", "app", "--output", str(out), "serve", "--dhcp", "none",
                             "--tftp", "none", "--assets", "/nonexistent", "--listen", f"127.0.0.1:{free_port()}",
                             "--matchbox-data", str(data), *extra], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "serve.json").exists() or proc.poll() is not None, what="serve to start or refuse")
    if proc.poll() is not None:
        stdout, stderr = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    return None


def test_the_appliance_tree_or_a_copy_of_it_is_refused(output, tmp_path):
    refused = serve(output, output / "matchbox")
    assert refused is not None and refused.returncode == 1
    assert "refusing --matchbox-data" in refused.stderr and "credentials" in refused.stderr
    assert "Traceback" not in refused.stderr and not (output / "serve.json").exists()
    copy = tmp_path / "copy"
    shutil.copytree(output / "matchbox", copy)
    refused = serve(output, copy)
    assert refused is not None and refused.returncode == 1
    assert "ignition/cp-1.ign holds a private key or a join token" in refused.stderr.replace("\n", "")


def test_a_tree_without_secrets_or_an_explicit_flag_is_served(output, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(output / "matchbox", copy)
    assert serve(output, copy, "--matchbox-data-with-secrets") is None
    for final in (copy / "ignition").glob("*.ign"):
        if not final.name.endswith("-install.ign"):
            final.unlink()  # the install-stage configs carry no key, token or certificate key
    (output / "serve.json").unlink(missing_ok=True)
    assert serve(output, copy) is None


def test_the_check_reads_inside_compressed_ignition_files(output, tmp_path):
    from pathlib import Path

    from app.cli.foreign_data import secret_in
    copy = tmp_path / "copy"
    shutil.copytree(output / "matchbox", copy)
    keep = copy / "ignition" / "worker-1.ign"  # a worker: the join token only, inside a gzip data URL
    for other in (copy / "ignition").glob("*.ign"):
        if other != keep:
            other.unlink()
    assert b"PRIVATE KEY" not in keep.read_bytes()
    assert secret_in(Path(copy)) == f"{keep} holds a private key or a join token"
