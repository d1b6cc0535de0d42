"""Day 2 without an API server: growth of a cluster that does not exist yet, an unreachable API
(a warning naming the nodes left without a fresh token), `--new-cluster`, rotated secrets, arm64.
Everything that talks to the API on day 2 (the cluster record `wait` writes, token and kubeadm-certs
Secrets minted by `generate --server`) runs against a real one: tests/k8s/test_day2_api_real.py.
Their shared helpers: tests/support/day2.py."""

from __future__ import annotations

import pytest

from app.cli import app
from app.cluster_record import CLUSTER_RECORD
from app.events import Event, append_event
from tests.support.day2 import WORKER_3, config_with, generate, kubeadm, runner, running_cluster, tree


# -- growing the cluster ------------------------------------------------------------------------------
def test_growth_without_a_cluster_adds_only_the_new_nodes_files(tmp_path):
    three = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"])
    four = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"], [WORKER_3])
    output = tmp_path / "output"
    generate(output, three)
    before = tree(output)
    generate(output, four)
    after = tree(output)
    assert all(after[k] == v for k, v in before.items()), [k for k, v in before.items() if after.get(k) != v]
    assert sorted(set(after) - set(before)) == sorted(
        f"matchbox/{kind}/{name}.{ext}" for name in ("worker-3", "worker-3-install")
        for kind, ext in (("ignition", "ign"), ("profiles", "json"), ("groups", "json")))


def test_an_unreachable_api_is_a_warning_naming_the_nodes_without_a_fresh_token(tmp_path):
    output, three = running_cluster(tmp_path, installed_too=True)
    append_event(output, Event("reinstall", mac="52:54:00:00:00:21", node="worker-1", source="cli"))
    result = generate(output, three, "--server", "https://127.0.0.1:9")
    assert "the cluster exists but its API did not answer" in result.output and "worker-1" in result.output
    warning = result.output.split("did not answer")[1]
    assert "worker-1 (the first install's token" in warning and "cp-1 (" not in warning and "worker-2 (" not in warning


def test_new_cluster_is_the_explicit_start_over(tmp_path):
    output, three = running_cluster(tmp_path, installed_too=True)
    generate(output, three, "--server", "https://127.0.0.1:9")
    assert kubeadm(output, "cp-1")[0]["kind"] == "JoinConfiguration"
    result = generate(output, three, "--new-cluster")
    assert "cp-1 will run kubeadm init" in result.output
    assert kubeadm(output, "cp-1")[0]["kind"] == "InitConfiguration"
    assert not (output / CLUSTER_RECORD).exists()


def test_rotated_secrets_mean_a_new_cluster(tmp_path):
    output, three = running_cluster(tmp_path)
    generate(output, three, "--rotate-secrets")
    assert kubeadm(output, "cp-1")[0]["kind"] == "InitConfiguration"


# -- arm64 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_binary", [False, True])
def test_arm64_nodes_need_an_arm64_ipxe_binary(tmp_path, with_binary):
    arm = {**WORKER_3, "arch": "arm64"}
    config = config_with(tmp_path, ["cp-1", "worker-1"], [arm])
    ipxe = tmp_path / "ipxe"
    ipxe.mkdir()
    for name in ("undionly.kpxe", "ipxe.efi"):
        (ipxe / name).write_bytes(b"x86")
    if with_binary:
        (ipxe / "snp-arm64.efi").write_bytes(b"arm64 ipxe")
    output = tmp_path / "output"
    result = runner.invoke(app, ["--config", str(config), "--output", str(output), "--templates", "/nonexistent",
                                 "generate", "--assets", "/nonexistent", "--ipxe-dir", str(ipxe)])
    if with_binary:
        assert result.exit_code == 0, result.output
        assert (output / "tftp" / "snp-arm64.efi").read_bytes() == b"arm64 ipxe"
    else:
        assert result.exit_code == 1
        assert "no snp-arm64.efi" in result.output and "worker-3" in result.output
        assert not output.exists() or not (output / "matchbox").exists()
