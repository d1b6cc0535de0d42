"""No unused imports, undefined names or syntax errors anywhere (ruff's pyflakes rules)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


def test_pyflakes_rules_pass():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff not installed (`make test` installs it)")
    result = subprocess.run([ruff, "check", "--select", "F,E9", "--line-length", "120", "app", "tests", "bench",
                             "scripts"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
