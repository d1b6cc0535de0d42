"""Every kubeadm configuration the project renders, for the real kubeadm to judge (tests/k8s/).

Each variant is cluster.yaml.example with a change (CNI, node set, version) rendered by the same
render_tree `generate` uses, optionally as day 2 (the cluster exists: the first controller joins,
nodes carry minted tokens). The kubeadm file is read back out of each node's Ignition config, from
the path the node's kubeadm.sh reads, so what is judged is what a node would receive.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from app import pki
from app.cluster import load_cluster
from app.render.templates import Templates
from app.render.tree import Appliance, render_tree
from tests.support.paths import EXAMPLE
from tests.unit.test_generate import files_of

KUBEADM_PATH = "/etc/kubernetes/kubeadm.yaml"
DAY2_TOKEN = "k8stst.0123456789abcdef"


@dataclass(frozen=True)
class Variant:
    name: str
    cni: str = "flannel"
    cilium: dict | None = None
    nodes: tuple[str, ...] = ("cp-1", "cp-2", "cp-3", "worker-1", "worker-2")
    day2: bool = False  # render as for a running cluster (every node joins; minted tokens)


VARIANTS = (
    Variant("flannel"),
    Variant("cilium-kube-proxy-replacement", cni="cilium", cilium={"wireguard": True, "kube_proxy_replacement": True}),
    Variant("cilium", cni="cilium", cilium={"wireguard": False, "kube_proxy_replacement": False}),
    Variant("cni-none", cni="none"),
    Variant("controllers-only", nodes=("cp-1", "cp-2", "cp-3")),
    Variant("single-controller", nodes=("cp-1",)),
    Variant("day2", day2=True),
    Variant("day2-controllers-only", nodes=("cp-1", "cp-2", "cp-3"), day2=True),
)


def cluster_file(directory: Path, variant: Variant, k8s_version: str) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["cluster"]["k8s_version"] = k8s_version
    data["cni"] = variant.cni
    if variant.cilium is not None:
        data["cilium"] = variant.cilium
    data["nodes"] = [n for n in data["nodes"] if n["name"] in variant.nodes]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"cluster-{variant.name}-{k8s_version}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rendered_files(directory: Path, variant: Variant, k8s_version: str, secrets: pki.Secrets | None = None,
                   token: str = DAY2_TOKEN, certificate_key: str | None = None) -> dict[str, tuple[bytes, int]]:
    """Day 2: every node joins with `token`; controllers with `certificate_key`, the key of a fresh
    kubeadm-certs upload (a new one when not given, as the appliance makes one per upload)."""
    cluster, problems = load_cluster(cluster_file(directory, variant, k8s_version))
    errors = [p for p in problems if p.severity == "error"]
    assert not errors, errors
    secrets = secrets or pki.create_secrets(dt.datetime.now(dt.UTC))
    tokens = {n.name: token for n in cluster.nodes} if variant.day2 else {}
    key = certificate_key or pki.new_certificate_key()
    keys = {n.name: key for n in cluster.controllers} if variant.day2 else {}
    appliance = Appliance(output_dir=directory / "output", cluster_exists=variant.day2, join_tokens=tokens,
                          certificate_keys=keys)
    return render_tree(cluster, secrets, Templates(None), appliance)


def kubeadm_configs(directory: Path, variant: Variant, k8s_version: str, secrets: pki.Secrets | None = None,
                    token: str = DAY2_TOKEN, certificate_key: str | None = None) -> dict[str, str]:
    """node name -> the kubeadm configuration its installed system gets."""
    files = rendered_files(directory, variant, k8s_version, secrets, token, certificate_key)
    out = {}
    for name in variant.nodes:
        config = json.loads(files[f"matchbox/ignition/{name}.ign"][0])
        out[name] = files_of(config)[KUBEADM_PATH].decode()
    return out


def kinds(text: str) -> list[str]:
    return [d["kind"] for d in yaml.safe_load_all(text) if d]
