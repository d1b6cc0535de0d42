"""`python3 scripts/lab …` as the docs write it works from a Python without the app's dependencies."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

VENV_PYTHON = REPO / ".venv" / "bin" / "python"


def bare_python() -> str:
    """A Python 3 without typer: the system's, as a user's shell finds it."""
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and Path(candidate).exists() and Path(candidate).resolve() != Path(sys.executable).resolve():
            lacks = subprocess.run([candidate, "-c", "import typer"], capture_output=True).returncode != 0
            if lacks:
                return candidate
    pytest.skip("no Python 3 without typer on this machine to start the lab from")


@pytest.mark.skipif(not VENV_PYTHON.exists(), reason="needs the checkout's .venv (make venv)")
def test_the_lab_runs_again_with_the_checkouts_venv(tmp_path):
    # `status` reads the lab's output through the app: it fails for want of a log, not of typer.
    done = subprocess.run([bare_python(), "scripts/lab", "status"], cwd=REPO, capture_output=True, text=True)
    assert "No module named" not in done.stderr, done.stderr
    assert "event log" in done.stderr
