"""`wait` against faults a real API server cannot be made to show on demand — one that answers late
then fails applies with 503, one whose certificate comes from another CA, one that never answers —
with the unmodified kubernetes client over real TLS (the stand-in, tests/support/apiserver.py).
Its happy path and every other ending are judged by a real API server: tests/k8s/test_gate_real.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from tests.support.gate import ADDON, NAMES, api, make_templates, run_wait
from tests.support.paths import EXAMPLE

runner = CliRunner()


@pytest.fixture
def templates(tmp_path) -> Path:
    return make_templates(tmp_path / "templates", {"10-extra.yaml": ADDON})


def test_api_late_and_transient_errors_are_retried(output, tmp_path, templates):
    with api(output, tmp_path, NAMES, api_after=2.0, flaky_applies=2) as server:
        started = time.monotonic()
        result = run_wait(output, server, templates)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 2.0
    paths = [a["path"] for a in server.applied]
    assert len(paths) == 8 + 6, (paths, result.output)  # with kured's six objects
    assert "Traceback" not in result.output


def test_a_server_with_another_ca_is_refused_clearly(output, tmp_path):
    with api(output, tmp_path, NAMES, ca="other") as server:
        started = time.monotonic()
        result = run_wait(output, server)
    assert result.exit_code == 3
    assert "certificate is not signed by this cluster's CA" in result.output
    assert time.monotonic() - started < 10  # refused at once, not after the whole timeout
    assert not (output / "kubeconfig").exists()


def test_api_never_answering_exits_3(output, tmp_path):
    result = runner.invoke(app, ["--config", str(EXAMPLE), "--output", str(output), "wait", "--server",
                                 "https://127.0.0.1:9", "--poll", "0.2", "--api-timeout", "1"])
    assert result.exit_code == 3 and "did not answer within 1s on https://127.0.0.1:9" in result.output
