"""The cilium CLI built from the Go module proxy (scripts/cilium-cli-binary), run with the arguments
`wait` gives it for cni: cilium. `--dry-run` renders what it would install without a cluster, so the
options cluster.yaml sets are checked in the real CLI's output; and the image build takes the built
binary from its context (ASSETS_DIR/bin/cilium)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from app.cluster import load_cluster
from app.cluster.model import Cilium
from app.wait.addons import cilium_args
from tests.support.built import built
from tests.support.paths import EXAMPLE
from tests.support.real_programs import VERSIONS

VERSION = VERSIONS["CILIUM_CLI_MODULE_VERSION"]
UNREACHABLE = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
users: [{name: u, user: {token: unused}}]
"""


def cilium() -> Path:
    return built("cilium-cli-binary", "cilium-cli", VERSION, "cilium") / "cilium"


def dry_run(tmp_path: Path, options: Cilium) -> dict[tuple[str, str], dict]:
    cluster, _ = load_cluster(EXAMPLE)
    cluster = cluster.model_copy(update={"cni": "cilium", "cilium": options})
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE)
    run = subprocess.run([str(cilium()), *cilium_args(cluster), "--dry-run"], capture_output=True, text=True,
                         env={"KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(run.stdout) if d}


def test_the_built_cli_says_its_version():
    run = subprocess.run([str(cilium()), "version", "--client"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and f"cilium-cli: {VERSION}" in run.stdout


def test_wait_s_arguments_reach_cilium_s_configuration(tmp_path):
    cluster, _ = load_cluster(EXAMPLE)
    objects = dry_run(tmp_path, Cilium(wireguard=True, kube_proxy_replacement=True))
    config = objects[("ConfigMap", "cilium-config")]["data"]
    assert config["ipam"] == "kubernetes"
    assert config["enable-wireguard"] == "true"
    assert config["kube-proxy-replacement"] == "true"
    agent = objects[("DaemonSet", "cilium")]["spec"]["template"]["spec"]["containers"][0]
    assert agent["image"].startswith("quay.io/cilium/cilium:v1.19.2@sha256:")  # digest-pinned release
    env = {e["name"]: e.get("value") for e in agent.get("env", [])}
    assert env["KUBERNETES_SERVICE_HOST"] == str(cluster.control_plane_address)


def test_without_the_options_cilium_keeps_its_defaults(tmp_path):
    config = dry_run(tmp_path, Cilium(wireguard=False, kube_proxy_replacement=False))[("ConfigMap", "cilium-config")]
    assert config["data"].get("enable-wireguard", "false") == "false"
    assert config["data"].get("kube-proxy-replacement", "false") == "false"
