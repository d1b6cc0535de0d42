"""`generate` on a really full file system (a small tmpfs filled to the brim): it fails naming the
file it could not write, the visible tree is the old one, nothing staged is left behind, and once
space is freed the same command succeeds."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.generate_trees import (
    changed_templates,
    fake_ipxe,
    leftovers,
    small_cluster,
    visible_tree,
)
from tests.support.paths import REPO


@pytest.fixture
def small_tmpfs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a real ENOSPC); CI runs it as root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def run_generate(config: Path, output: Path, templates: Path | str, ipxe: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "--config", str(config), "--output", str(output),
                           "--templates", str(templates), "generate", "--assets", "/nonexistent",
                           "--ipxe-dir", str(ipxe)], check=False, cwd=REPO, capture_output=True,
                          text=True)


def fill(directory: Path) -> Path:
    """Write until the file system refuses another byte."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 4096)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    return filler


def test_full_disk_leaves_the_old_tree_and_a_clear_message(small_tmpfs, tmp_path):
    before = small_cluster(tmp_path / "before.yaml", keep=("cp-1", "worker-1"))
    after = small_cluster(tmp_path / "after.yaml", keep=("cp-1", "worker-1", "worker-2"))
    templates, ipxe = changed_templates(tmp_path / "templates"), fake_ipxe(tmp_path / "ipxe")
    out = small_tmpfs / "output"
    assert run_generate(before, out, "/nonexistent", ipxe).returncode == 0
    old = visible_tree(out)
    filler = fill(small_tmpfs)

    failed = run_generate(after, out, templates, ipxe)
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    assert f"cannot write {out}/.generations/2/" in failed.stderr  # names the file being written
    assert "No space left on device; output left unchanged" in failed.stderr
    assert visible_tree(out) == old and leftovers(out) == []

    filler.unlink()
    done = run_generate(after, out, templates, ipxe)
    assert done.returncode == 0, done.stderr
    assert "3 nodes" in done.stdout and leftovers(out) == []
    new = visible_tree(out)
    assert new != old and new["matchbox/groups/worker-2.json"][0].count(b'"rack": "r1"') == 1
