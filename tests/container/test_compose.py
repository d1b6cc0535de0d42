"""docker-compose.yaml as Debian's docker-compose reads it: valid, host network, the three mounts."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.support.paths import REPO

COMPOSE = REPO / "docker-compose.yaml"


def compose_config(path) -> subprocess.CompletedProcess:
    if shutil.which("docker-compose") is None:
        pytest.skip("needs docker-compose (Debian: docker-compose; .ci/run installs it)")
    return subprocess.run(["docker-compose", "-f", str(path), "config"], capture_output=True, text=True,
                          cwd=path.parent)


def test_compose_file_is_valid_and_says_what_the_appliance_needs():
    done = compose_config(COMPOSE)
    assert done.returncode == 0, done.stderr
    service = yaml.safe_load(done.stdout)["services"]["bootstrap-node"]
    assert service["network_mode"] == "host" and service["privileged"] is True
    targets = {v.split(":")[1] for v in service["volumes"]}
    assert targets == {"/config/cluster.yaml", "/output", "/templates"}


def test_compose_refuses_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("network_mode: host", "network_mod: host"))
    done = compose_config(broken)
    assert done.returncode != 0 and "network_mod" in done.stderr
