"""Outside a container the commands find ./cluster.yaml and write ./output; inside one, the volumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import common
from app.cli.common import Paths, default_paths
from tests.support.paths import REPO

EXAMPLE = REPO / "examples" / "single-node.yaml"


def test_the_volumes_win_where_they_are_mounted(tmp_path, monkeypatch):
    volumes = Paths(tmp_path / "config" / "cluster.yaml", tmp_path / "output", tmp_path / "templates")
    monkeypatch.setattr(common, "CONTAINER_PATHS", volumes)
    assert default_paths() == common.LOCAL_PATHS
    for directory in (volumes.config.parent, volumes.output, volumes.templates):
        directory.mkdir()
    assert default_paths() == volumes


def bootstrap_node(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOTSTRAP_")}
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=cwd, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(REPO)})


@pytest.mark.skipif(Path("/config").is_dir() or Path("/output").is_dir(),
                    reason="this host has /config or /output: the container defaults apply")
def test_a_source_install_works_in_the_directory_holding_cluster_yaml(tmp_path):
    missing = bootstrap_node(tmp_path, "validate")
    assert missing.returncode == 2
    assert "cluster.yaml: file not found" in missing.stderr and "--config" in missing.stderr
    (tmp_path / "cluster.yaml").write_text(EXAMPLE.read_text())
    assert bootstrap_node(tmp_path, "validate").returncode == 0
    made = bootstrap_node(tmp_path, "generate", "--assets", str(tmp_path / "assets"))
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "output" / "matchbox" / "ignition" / "solo-1.ign").is_file()


def test_shell_completion_completes_commands(tmp_path):
    env = {**os.environ, "_BOOTSTRAP_NODE_COMPLETE": "complete_bash", "COMP_WORDS": "bootstrap-node val",
           "COMP_CWORD": "1"}
    done = subprocess.run([str(Path(sys.executable).parent / "bootstrap-node")], env=env, capture_output=True,
                          text=True)
    assert done.stdout.split() == ["validate"]
