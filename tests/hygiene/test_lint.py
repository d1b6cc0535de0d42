"""The whole tree passes ruff with the project's rule set (pyproject.toml [tool.ruff]: pycodestyle,
pyflakes, isort, bugbear, pyupgrade and McCabe complexity), not only the pyflakes subset."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


def test_ruff_passes_with_the_project_rules():
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff not installed (`make test` installs it)")
    result = subprocess.run([ruff, "check", "app", "tests", "bench", "scripts"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout


def test_the_rule_set_is_the_real_one():
    """A test that could pass by selecting nothing is no test: the configuration names the families."""
    config = (REPO / "pyproject.toml").read_text()
    for family in ('"E"', '"W"', '"F"', '"I"', '"B"', '"UP"', '"C90"'):
        assert family in config.split("[tool.ruff.lint]")[1].split("\n[")[0], family
