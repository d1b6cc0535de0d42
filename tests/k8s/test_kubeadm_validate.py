"""Real kubeadm judges every kubeadm configuration the project renders: init, control-plane join and
worker join; flannel, Cilium (with and without kube-proxy replacement) and `cni: none`; one and three
controllers; day 2 (the first controller joins a running cluster, minted tokens); for each supported
Kubernetes version whose kubeadm is built. `kubeadm config validate` rejecting one is a bug in
app/templates/kubeadm or app/render."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import k8s_builds
from tests.support.kubeadm_renders import VARIANTS, Variant, kinds, kubeadm_configs

KIND_OF_NODE = {"init": ["InitConfiguration", "ClusterConfiguration"], "join": ["JoinConfiguration"]}


def validate(kubeadm: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(kubeadm), "config", "validate", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("version", k8s_builds.SUPPORTED)
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_kubeadm_accepts_every_rendered_config(variant: Variant, version: str, tmp_path):
    kubeadm = k8s_builds.kubeadm(version)
    configs = kubeadm_configs(tmp_path, variant, version)
    for node, text in configs.items():
        expected = "init" if node == "cp-1" and not variant.day2 else "join"
        assert kinds(text) == KIND_OF_NODE[expected], node  # each node gets the configuration it runs
        path = tmp_path / f"{node}.yaml"
        path.write_text(text)
        run = validate(kubeadm, path)
        assert run.returncode == 0, f"{variant.name}/{node} for {version}:\n{text}\n{run.stderr}"
        # kubeadm warns (exit 0) about deprecated or unknown fields; a warning is a defect too.
        assert "W" not in {line[:1] for line in run.stderr.splitlines()}, run.stderr


def test_kubeadm_rejects_a_broken_config(tmp_path):
    """The check can fail: a field kubeadm v1beta4 does not know is an error, not a warning."""
    kubeadm = k8s_builds.kubeadm(k8s_builds.DEFAULT)
    text = kubeadm_configs(tmp_path, VARIANTS[0], k8s_builds.DEFAULT)["worker-1"]
    path = tmp_path / "broken.yaml"
    path.write_text(text.replace("caCertHashes:", "caCertHash:"))
    run = validate(kubeadm, path)
    assert run.returncode != 0
    assert "caCertHash" in run.stderr
