"""Reboot coordination on the nodes (`reboots: kured`, the default): Flatcar's update-engine stages
updates without rebooting, a timer turns a staged update into kured's /run/reboot-required, and
`reboots: none` leaves all of it out."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support.paths import EXAMPLE
from tests.unit.test_generate import files_of, ignition, out, run_generate  # noqa: F401 - `out`: the tree

TIMER = "bootstrap-node-reboot-required.timer"
SERVICE = "bootstrap-node-reboot-required.service"


def units(config: dict) -> dict[str, dict]:
    return {u["name"]: u for u in config["systemd"]["units"]}


@pytest.mark.parametrize("node", ["cp-1", "cp-2", "worker-1"])
def test_by_default_updates_wait_for_kured(out, node):  # noqa: F811
    config = ignition(out, node)
    assert files_of(config)["/etc/flatcar/update.conf"].decode().splitlines()[-1] == "REBOOT_STRATEGY=off"
    found = units(config)
    assert found[TIMER]["enabled"] is True and "OnUnitActiveSec=5min" in found[TIMER]["contents"]
    assert "UPDATE_STATUS_UPDATED_NEED_REBOOT" in found[SERVICE]["contents"]
    assert found["locksmithd.service"]["mask"] is True


def test_the_sentinel_command_touches_the_file_only_for_a_staged_update(out, tmp_path):  # noqa: F811
    if shutil.which("sh") is None:
        pytest.skip("needs sh")
    line = next(l for l in units(ignition(out, "worker-1"))[SERVICE]["contents"].splitlines()
                if l.startswith("ExecStart="))
    command = line.split("-c ", 1)[1].strip('"').replace("/run/reboot-required", str(tmp_path / "reboot-required"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    client = bin_dir / "update_engine_client"
    for status, touched in (("UPDATE_STATUS_IDLE", False), ("UPDATE_STATUS_UPDATED_NEED_REBOOT", True)):
        client.write_text(f"#!/bin/sh\necho CURRENT_OP={status}\n")
        client.chmod(0o755)
        done = subprocess.run(["sh", "-c", command], env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"})
        assert done.returncode == 0 and (tmp_path / "reboot-required").exists() is touched


def test_reboots_none_leaves_the_updates_alone(tmp_path):
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text() + "reboots: none\n")
    output = tmp_path / "output"
    assert run_generate(output, config=config).exit_code == 0
    node = ignition(output, "worker-1")
    assert "/etc/flatcar/update.conf" not in files_of(node) and TIMER not in units(node)
