"""`wait`'s Cilium step with the real cilium CLI (scripts/cilium-cli-binary) against the real control
plane: `cilium install` with the arguments cluster.yaml makes, through the kubeconfig `wait` writes,
creates Cilium's objects in the real API server; a second run sees them and leaves them alone."""

from __future__ import annotations

import os
import time

from app.cluster import load_cluster
from app.cluster.model import Cilium
from app.wait import kube
from app.wait.addons import Installer, Plan
from tests.integration.test_cilium_cli import cilium
from tests.support.paths import EXAMPLE


def test_wait_installs_cilium_with_the_real_cli(control_plane, generated_k8s, tmp_path, monkeypatch):
    binary = cilium()  # skips when it is not built
    monkeypatch.setenv("PATH", f"{binary.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))  # the CLI keeps a cache under $HOME
    cluster, _ = load_cluster(EXAMPLE)
    cluster = cluster.model_copy(update={"cni": "cilium", "cilium": Cilium(wireguard=True)})
    output = tmp_path / "output"
    (output / "credentials").mkdir(parents=True)
    (output / "credentials" / "admin.kubeconfig").write_bytes(
        (generated_k8s / "credentials" / "admin.kubeconfig").read_bytes())
    api = kube.api_client(output / "credentials" / "admin.kubeconfig", control_plane.server)
    said: list[str] = []
    installer = Installer(api, Plan(cluster, None), output, time.monotonic() + 300, time.sleep, said.append, poll=1)
    installer.run()
    assert any(line.startswith("ran cilium install") for line in said), said
    daemonset = kube.get(api, "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium")
    assert daemonset["spec"]["template"]["spec"]["containers"][0]["image"].startswith("quay.io/cilium/cilium:v1.19.2@")
    config = kube.get(api, "/api/v1/namespaces/kube-system/configmaps/cilium-config")["data"]
    assert config["enable-wireguard"] == "true" and config["ipam"] == "kubernetes"
    said.clear()
    installer.run()
    assert said == ["cilium is already installed"]
