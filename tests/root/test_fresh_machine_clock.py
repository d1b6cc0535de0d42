"""The freshness tests, run on a machine that looks booted five minutes ago: a time namespace
(`unshare --time`) sets the monotonic and boot clocks to 300 s, whatever this machine's uptime.
A cache that took "never looked" for "looked at 0.0" passed on machines up for hours and failed
on a fresh CI machine; here it fails everywhere."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.root.netns import require_root_tools
from tests.support.paths import REPO

FRESH_UPTIME = 300


def test_the_integration_freshness_tests_pass_on_a_machine_up_for_five_minutes():
    require_root_tools("unshare")
    offset = FRESH_UPTIME - int(time.clock_gettime(time.CLOCK_BOOTTIME))
    probe = subprocess.run(["unshare", "--time", "--monotonic", str(offset), "--boottime", str(offset),
                            sys.executable, "-c", "import time; print(time.monotonic())"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this kernel has no time namespaces: {probe.stderr.strip()[:200]}")
    assert float(probe.stdout) < FRESH_UPTIME + 60  # the namespace took: the clock reads minutes, not hours
    run = subprocess.run(["unshare", "--time", "--monotonic", str(offset), "--boottime", str(offset),
                          sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/integration/test_looking_for_changes.py", "tests/unit/test_recheck.py"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
