"""`pivot` and `unpivot` on the command line, where no API server is needed: --dry-run's YAML, and
every refusal before the first call, with its exit code and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from tests.support.paths import EXAMPLE
from tests.unit.test_pivot_state import write_credentials


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return write_credentials(tmp_path_factory.mktemp("cli") / "output")


def pivot(output: Path, *args: str):
    return CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(output), "--templates", "/nonexistent",
                                    "pivot", *args])


def test_dry_run_prints_every_object_and_needs_no_cluster(output):
    result = pivot(output, "--dry-run", "--namespace", "prov")
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert [d["kind"] for d in docs].count("Machine") == 5
    assert all(d["metadata"].get("namespace") in (None, "prov", "kube-system") for d in docs)
    assert (output / "credentials" / "ca.key").read_text().splitlines()[1] not in result.output


@pytest.mark.parametrize("args, code, says", [
    ([], 1, "pass --kubeconfig"),
    (["--dry-run", "--node-selector", "nokey"], 1, "--node-selector 'nokey': expected key=value"),
    (["--dry-run", "--namespace", "Not_A_Label"], 1, "--namespace 'Not_A_Label'"),
    (["--kubeconfig", "/nonexistent/kubeconfig"], 2, "/nonexistent/kubeconfig: No such file"),
    (["--kubeconfig", "/nonexistent/kubeconfig", "--server", "api:6443"], 1, "--server 'api:6443': expected https://"),
    (["--kubeconfig", "/nonexistent/kubeconfig", "--server", "http://api:6443"], 1, "not over plain http"),
])
def test_refusals_before_any_call(output, tmp_path, args, code, says):
    result = pivot(output, *args)
    assert result.exit_code == code and says in result.output, result.output
    assert "Traceback" not in result.output


def test_a_kubeconfig_without_a_server_is_refused(output, tmp_path):
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    result = pivot(output, "--kubeconfig", str(tmp_path / "kubeconfig"))
    assert result.exit_code == 2 and "not a kubeconfig with a current context" in result.output


def test_a_missing_output_dir_is_exit_2(tmp_path):
    result = pivot(tmp_path / "none", "--dry-run")
    assert result.exit_code == 2 and "no such output directory" in result.output


@pytest.mark.parametrize("args, says", [
    (["--pivot-image", "registry.example/x:1"], "need --pivot"),
    (["--pivot", "--pivot-node-selector", "nokey"], "--node-selector 'nokey': expected key=value"),
    (["--pivot", "--pivot-namespace", "Not_A_Label"], "--namespace 'Not_A_Label'"),
])
def test_init_refuses_a_bad_pivot_option_before_anything(tmp_path, args, says):
    result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(tmp_path / "out"), "init", "--yes",
                                      *args])
    assert result.exit_code == 1 and says in result.output, result.output
    assert not (tmp_path / "out").exists()  # nothing generated, served or powered
