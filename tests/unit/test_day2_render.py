"""Rendering for a cluster that exists, per-node join tokens, kubeadm's pause image, arm64 consoles:
render_tree in memory (fixed secrets), no network, no writes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from app import pki
from app.cluster import load_cluster
from app.render.images import kubeadm_images, kubeadm_versions, sandbox_image
from app.render.templates import Templates
from app.render.tree import Appliance, render_tree
from tests.conftest import EXAMPLE
from tests.unit.test_generate import decode

OUT = Path("/srv/out")
CA_SET = {f"/opt/bootstrap-node/kubernetes/pki/{n}" for n in ("ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key")}


@pytest.fixture(scope="module")
def secrets() -> pki.Secrets:
    return pki.create_secrets(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def cluster():
    return load_cluster(EXAMPLE)[0]


def render(cluster, secrets, **appliance) -> dict[str, tuple[bytes, int]]:
    return render_tree(cluster, secrets, Templates(None), Appliance(output_dir=OUT, **appliance))


def final_files(files, node: str) -> dict[str, bytes]:
    config = json.loads(files[f"matchbox/ignition/{node}.ign"][0])
    return {f["path"]: decode(f["contents"]) for f in config["storage"]["files"]
            if f.get("contents", {}).get("source", "").startswith("data:")}


def kubeadm_config(files, node: str) -> list[dict]:
    return list(yaml.safe_load_all(final_files(files, node)["/etc/kubernetes/kubeadm.yaml"]))


def node_files(files, node: str) -> dict:
    return {k: v for k, v in files.items() if k.startswith("matchbox/") and
            k.rsplit("/", 1)[1] in (f"{node}.ign", f"{node}.json", f"{node}-install.ign", f"{node}-install.json")}


# -- item 2: the pause image ----------------------------------------------------------------------
def test_containerd_sandbox_image_is_kubeadms_pause_for_the_version(cluster, secrets):
    version = cluster.cluster.k8s_version
    assert kubeadm_versions(version) is not None, f"k8s-images.yaml has no entry for {version}: add kubeadm's pause"
    pause = sandbox_image(version)
    assert pause and pause in kubeadm_images(version)  # the very image kubeadm pulls and preflight expects
    files = render(cluster, secrets)
    for node in cluster.nodes:
        toml = final_files(files, node.name)["/etc/containerd/config.toml"].decode()
        assert f'sandbox_image = "{pause}"' in toml, node.name


def test_every_supported_version_names_a_pause_image():
    """A version added to k8s-images.yaml without its pause tag would silently fall back to
    containerd's default sandbox image."""
    from app.render.images import supported_versions
    for version, tags in supported_versions().items():
        assert str(tags.get("pause", "")).strip(), version
        assert sandbox_image(version) == f"registry.k8s.io/pause:{tags['pause']}"


# -- item 4: the first controller never inits a cluster that exists -----------------------------
def test_before_the_cluster_exists_the_first_controller_inits_with_the_ca_set(cluster, secrets):
    files = render(cluster, secrets)
    config = kubeadm_config(files, "cp-1")
    assert config[0]["kind"] == "InitConfiguration"
    assert CA_SET <= set(final_files(files, "cp-1"))
    script = final_files(files, "cp-1")["/opt/bootstrap-node/kubeadm.sh"].decode()
    # The guard asks the VIP and the other controllers, never this node itself.
    assert "for url in https://10.0.0.10:6443 https://10.0.0.12:6443 https://10.0.0.13:6443; do" in script
    assert "refusing kubeadm init" in script and "exit 3" in script
    unit = json.loads(files["matchbox/ignition/cp-1.ign"][0])["systemd"]["units"]
    kubeadm_unit = next(u for u in unit if u["name"] == "bootstrap-node-kubeadm.service")
    assert "RestartPreventExitStatus=3" in kubeadm_unit["contents"]


def test_once_the_cluster_exists_the_first_controller_joins_like_the_others(cluster, secrets):
    files = render(cluster, secrets, cluster_exists=True)
    config = kubeadm_config(files, "cp-1")
    assert [d["kind"] for d in config] == ["JoinConfiguration"]
    assert config[0]["controlPlane"]["certificateKey"] == secrets.certificate_key
    assert config[0]["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == "10.0.0.11"
    assert config[0]["discovery"]["bootstrapToken"]["caCertHashes"] == [pki.ca_pin(secrets.ca_crt)]
    cp1 = final_files(files, "cp-1")
    assert not CA_SET & set(cp1), "a joining controller fetches the CA set; it must not receive the keys"
    assert "kubeadm init" not in cp1["/opt/bootstrap-node/kubeadm.sh"].decode()
    vip = cp1["/opt/bootstrap-node/kubernetes/manifests/kube-vip.yaml"].decode()
    assert "/etc/kubernetes/admin.conf" in vip and "super-admin.conf" not in vip
    # cp-1's files are now exactly what cp-2 gets, up to its own name and addresses.
    cp2 = final_files(files, "cp-2")["/etc/kubernetes/kubeadm.yaml"].decode()
    assert cp1["/etc/kubernetes/kubeadm.yaml"].decode() == cp2.replace("cp-2", "cp-1").replace("10.0.0.12", "10.0.0.11")


def test_the_existing_cluster_changes_only_the_first_controllers_files(cluster, secrets):
    before, after = render(cluster, secrets), render(cluster, secrets, cluster_exists=True)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed == {"matchbox/ignition/cp-1.ign"}


# -- item 5: per-node join tokens -------------------------------------------------------------------
def test_a_node_with_a_minted_token_carries_exactly_it_and_no_other_node_changes(cluster, secrets):
    base = render(cluster, secrets, cluster_exists=True)
    fresh = "abcdef.0123456789abcdef"
    files = render(cluster, secrets, cluster_exists=True, join_tokens={"worker-2": fresh})
    assert kubeadm_config(files, "worker-2")[0]["discovery"]["bootstrapToken"]["token"] == fresh
    assert kubeadm_config(files, "worker-1")[0]["discovery"]["bootstrapToken"]["token"] == secrets.bootstrap_token
    changed = {k for k in files if files[k] != base[k]}
    assert changed == {"matchbox/ignition/worker-2.ign"}


# -- item 7: arm64 -----------------------------------------------------------------------------------
def test_arm64_nodes_boot_with_the_arm64_serial_console(cluster, secrets):
    arm = cluster.model_copy(update={"nodes": [n.model_copy(update={"arch": "arm64"}) if n.name == "worker-2" else n
                                               for n in cluster.nodes]})
    files = render(arm, secrets)
    args = json.loads(files["matchbox/profiles/worker-2-install.json"][0])["boot"]["args"]
    assert "console=ttyAMA0,115200n8" in args and "console=ttyS0,115200n8" not in args
    x86 = json.loads(files["matchbox/profiles/worker-1-install.json"][0])["boot"]["args"]
    assert "console=ttyS0,115200n8" in x86
    conf = files["dnsmasq.conf"][0].decode()
    assert 'pxe-service=tag:!ipxe,ARM64_EFI,"PXE chainload to iPXE arm64",snp-arm64.efi' in conf
