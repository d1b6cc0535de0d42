"""A plain (not editable) wheel works on its own: built from this checkout, installed into a fresh venv,
run from a directory outside the checkout, it generates a tree with its built-in templates."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support.paths import EXAMPLE, REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("src") / "bootstrap-node"  # a copy: the build writes build/ and egg-info
    shutil.copytree(REPO, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(source)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return next(dist.glob("bootstrap_node-*.whl"))


def test_the_wheel_carries_the_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "app/templates/ignition/install.yaml.tmpl" in names
    assert "app/templates/kubeadm/init.yaml.tmpl" in names
    # `assets fetch` runs these from the installed package, as the image build does from the checkout.
    assert {"app/asset_scripts/fetch-and-verify", "app/asset_scripts/flatcar-image-signing-key.asc"} <= set(names)


def test_an_installed_wheel_generates_without_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    target = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                            check=True, capture_output=True, text=True).stdout.strip()
    # The wheel alone, unpacked as pip would; its dependencies come from the test environment's
    # site-packages by path (a .pth line), which does not bring this checkout's editable `app`.
    zipfile.ZipFile(wheel).extractall(target)
    Path(target, "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([str(venv / "bin" / "python"), "-c",
                             "import app, sys; print(app.__file__); from app.cli import main; sys.argv[0] = 'bootstrap-node'; main()",
                             "--config", str(EXAMPLE), "--output", str(tmp_path / "out"), "--templates", "/nonexistent",
                             "generate", "--assets", "/nonexistent", "--ipxe-dir", "/nonexistent"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith(target), "the test must run the installed wheel"
    assert (tmp_path / "out" / "matchbox" / "ignition" / "cp-1.ign").is_file()
