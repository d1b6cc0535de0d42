"""Where tests/k8s/ finds the real Kubernetes programs scripts/k8s-binaries builds: the project's
default version in full (the control plane), the other supported minors as kubeadm alone (enough to
judge configurations and image lists). Missing builds skip, or fail under BOOTSTRAP_NODE_REQUIRE_BUILT."""

from __future__ import annotations

from pathlib import Path

from tests.support.built import built, cache_root

DEFAULT = "v1.36.3"  # the project's default Kubernetes (cluster.yaml.example)
SUPPORTED = ("v1.35.4", "v1.36.3", "v1.37.2")  # one per supported minor, as k8s-images.yaml lists them
CONTROL_PLANE = ("kubeadm", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "etcd")


def full(version: str = DEFAULT) -> Path:
    return built("k8s-binaries", "k8s", version, *CONTROL_PLANE)


def kubeadm(version: str) -> Path:
    """The kubeadm binary for `version`: from the full build when there is one, else a kubeadm-only one."""
    whole = cache_root() / "k8s" / version
    if (whole / "BUILD-INFO").is_file() and (whole / "kubeadm").is_file():
        return whole / "kubeadm"
    return built("k8s-binaries --only kubeadm", "kubeadm", version, "kubeadm") / "kubeadm"
