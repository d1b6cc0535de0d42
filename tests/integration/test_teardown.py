"""teardown signals only the exact process serve.json records: never a process that merely has that
pid now (after a crash, or a reboot)."""

from __future__ import annotations

import json
import subprocess
import sys

from app import process
from tests.support.paths import REPO


def teardown(out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "--output", str(out), "teardown", "--timeout", "5"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)


def test_a_recorded_pid_now_owned_by_another_process_is_left_alone(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        me = process.identity(stranger.pid)
        for forged in ({"start_ticks": me.start_ticks + 1, "boot_id": me.boot_id},  # the pid was reused
                       {"start_ticks": me.start_ticks, "boot_id": "another-boot"}):  # the host rebooted
            state = {"pid": stranger.pid, "url": "http://x", "output": str(tmp_path),
                     "serve": {"pid": stranger.pid, **forged}, "dnsmasq": None}
            (tmp_path / "serve.json").write_text(json.dumps(state))
            result = teardown(tmp_path)
            assert result.returncode == 0 and "was not running" in result.stdout, result.stderr
            assert stranger.poll() is None, "teardown signalled a process that is not our serve"
            assert not (tmp_path / "serve.json").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_an_old_style_state_file_is_not_trusted(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "serve.json").write_text(json.dumps({"pid": stranger.pid, "url": "http://x"}))
        result = teardown(tmp_path)
        assert result.returncode == 0 and "nothing running" in result.stdout
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
