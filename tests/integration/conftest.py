"""Fixtures shared by the integration tests: one generated output tree, copied per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.support.paths import EXAMPLE

runner = CliRunner()


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wait") / "output"
    result = runner.invoke(app, ["--config", str(EXAMPLE), "--output", str(out), "--templates", "/nonexistent",
                                 "generate", "--assets", "/nonexistent"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def output(generated, tmp_path) -> Path:
    """A fresh copy per test (events and kubeconfig differ), same credentials."""
    import shutil
    out = tmp_path / "output"
    shutil.copytree(generated, out)
    return out


