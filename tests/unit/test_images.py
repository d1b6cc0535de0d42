"""What a cluster needs from the appliance's registry: kubeadm's list per version, kube-vip, and the
images named in the manifests `wait` applies; the hosts.toml set the nodes get."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.cluster import load_cluster
from app.render import images
from tests.support.paths import EXAMPLE, REPO

FLANNEL = REPO / "tests" / "fixtures" / "kube-flannel.yml"


@pytest.mark.parametrize(("written", "full"), [
    ("redis:7.0.15-alpine", "docker.io/library/redis:7.0.15-alpine"),
    ("library/redis", "docker.io/library/redis:latest"),
    ("dexidp/dex:v2.41.1", "docker.io/dexidp/dex:v2.41.1"),
    ("ghcr.io/flannel-io/flannel:v0.26.4", "ghcr.io/flannel-io/flannel:v0.26.4"),
    ("quay.io/cilium/cilium:v1.16.5@sha256:" + "a" * 64, "quay.io/cilium/cilium:v1.16.5@sha256:" + "a" * 64),
    ("quay.io/x/y@sha256:" + "b" * 64, "quay.io/x/y@sha256:" + "b" * 64),
    ("localhost:5000/tool", "localhost:5000/tool:latest"),
])
def test_full_reference_follows_dockers_rules(written, full):
    assert images.full_reference(written) == full


def test_kubeadm_list_for_a_recorded_version():
    refs = images.kubeadm_images("v1.36.3")
    assert refs == ["registry.k8s.io/kube-apiserver:v1.36.3", "registry.k8s.io/kube-controller-manager:v1.36.3",
                    "registry.k8s.io/kube-scheduler:v1.36.3", "registry.k8s.io/kube-proxy:v1.36.3",
                    "registry.k8s.io/coredns/coredns:v1.14.2", "registry.k8s.io/pause:3.10.2",
                    "registry.k8s.io/etcd:3.6.8-0"]
    assert images.sandbox_image("v1.36.3") == "registry.k8s.io/pause:3.10.2"


def test_every_recorded_version_says_where_it_came_from():
    data = yaml.safe_load(images.K8S_IMAGES.read_text())
    assert data, "no version recorded"
    for version, entry in data.items():
        assert set(entry) == {"pause", "coredns", "etcd", "source"}, version
        assert f"kubeadm config images list --kubernetes-version {version}` of kubeadm {version}" in entry["source"], \
            version


def test_unknown_version_is_a_clear_error():
    with pytest.raises(images.UnsupportedVersion, match=r"Kubernetes v1\.99\.0 \(known: v1\.35\.4, v1\.36\.3, v1\.37\.2\)"):
        images.kubeadm_images("v1.99.0")
    assert images.sandbox_image("v1.99.0") == ""


def test_manifest_images_finds_init_and_regular_containers_once(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("""
apiVersion: apps/v1
kind: DaemonSet
spec:
  template:
    spec:
      initContainers: [{name: a, image: "ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1"}]
      containers: [{name: b, image: "ghcr.io/flannel-io/flannel:v0.26.4"}]
---
apiVersion: batch/v1
kind: CronJob
spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: "redis:7"},
                                                            {name: d, image: "ghcr.io/flannel-io/flannel:v0.26.4"}]}}}}}
---
kind: ConfigMap
data: {image: "not-a-container:1"}
""")
    assert images.manifest_images(manifest) == ["ghcr.io/flannel-io/flannel-cni-plugin:v1.6.2-flannel1",
                                                "ghcr.io/flannel-io/flannel:v0.26.4", "docker.io/library/redis:7"]


def test_cluster_images_kubeadm_kube_vip_then_manifests_each_once():
    cluster, _ = load_cluster(EXAMPLE)
    found = images.cluster_images(cluster, {"cni/flannel.yaml": FLANNEL, "gitops/argo-cd.yaml": None})
    refs = [i.ref for i in found]
    assert refs[:7] == images.kubeadm_images("v1.36.3")
    assert found[7] == images.Image(images.KUBE_VIP_IMAGE, "kube-vip")
    assert images.Image("ghcr.io/flannel-io/flannel:v0.26.4", "cni/flannel.yaml") in found
    assert len(refs) == len(set(refs))


def test_no_vip_no_kube_vip():
    cluster, _ = load_cluster(EXAMPLE)
    single = cluster.model_copy(update={"control_plane_vip": None})
    assert images.KUBE_VIP_IMAGE not in [i.ref for i in images.cluster_images(single, {})]


def test_every_mirrored_registry_has_an_https_upstream():
    mirrors = images.registry_mirrors()
    assert [m["registry"] for m in mirrors] == list(images.MIRRORED_REGISTRIES)
    assert {m["registry"]: m["upstream"] for m in mirrors}["docker.io"] == "https://registry-1.docker.io"
    assert all(m["upstream"].startswith("https://") for m in mirrors)


def test_build_entry_point_prints_the_baked_set(capsys):
    assert images.main(["v1.36.3", str(FLANNEL)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [*images.kubeadm_images("v1.36.3"), images.KUBE_VIP_IMAGE, *images.manifest_images(FLANNEL)]
    assert images.main(["v0.0.1"]) == 1
    assert "no verified kubeadm image list" in capsys.readouterr().err


def test_the_data_file_ships_in_the_wheel():
    text = (REPO / "pyproject.toml").read_text()
    assert '"render/*.yaml"' in text and Path(images.K8S_IMAGES).parent.name == "render"
