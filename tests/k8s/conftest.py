"""Fixtures for the real-Kubernetes tier: one real control plane for it, made from our own
`generate` output for cluster.yaml.example (see tests/support/control_plane.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app
from app.cluster import load_cluster
from tests.root.netns import require_root_tools
from tests.support import k8s_builds
from tests.support.control_plane import ControlPlane, NetNS, addresses, node_files
from tests.support.paths import EXAMPLE
from tests.unit.test_generate import files_of


@pytest.fixture(scope="session")
def k8s_bin() -> Path:
    return k8s_builds.full()


@pytest.fixture(scope="package")
def generated_k8s(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("k8s-generate") / "output"
    result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(out), "--templates", "/nonexistent",
                                      "generate", "--assets", "/nonexistent", "--ipxe-dir", "/nonexistent"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def output(generated_k8s, tmp_path) -> Path:
    """A copy of the tree the control plane was made from (same credentials), one per test."""
    out = tmp_path / "output"
    shutil.copytree(generated_k8s, out, symlinks=True)
    return out


@pytest.fixture(scope="package")
def control_plane(k8s_bin, generated_k8s, tmp_path_factory):
    """cp-1's rendered kubeadm config and CA set, through real kubeadm, as running processes in a
    network namespace holding cp-1's address and the VIP. Package-scoped: it stops when this tier
    is done, not at the end of the whole suite."""
    require_root_tools()  # it runs in a network namespace of its own
    cluster, _ = load_cluster(EXAMPLE)
    ignition = json.loads((generated_k8s / "matchbox" / "ignition" / "cp-1.ign").read_text())
    config, placed = node_files(ignition, files_of)
    netns = NetNS(f"bn-k8s-{os.getpid()}", addresses(cluster)).create()
    plane = ControlPlane(bin=k8s_bin, root=tmp_path_factory.mktemp("k8s-root"), config=config,
                         node_files=placed, netns=netns)
    try:
        plane.start()
        plane.finish_init("cp-1")
        yield plane
    finally:
        plane.stop()
        netns.delete()


@pytest.fixture(autouse=True)
def _inside_the_cluster_network(request):
    """Tests that use the control plane make their API calls from inside its network namespace."""
    if "control_plane" not in request.fixturenames:
        yield
        return
    with request.getfixturevalue("control_plane").inside():
        yield

