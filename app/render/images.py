"""The container images a cluster needs, and the registries its nodes reach through the appliance.

kubeadm's images come from a data file per Kubernetes version (k8s-images.yaml: kubeadm's own
constants, with their source); kube-vip is the image the static pod names; the CNI, Argo CD and
the user's add-ons name theirs in the manifests `wait` applies, so those are read from the very
files, never from a second copy that could drift.

Runs as a build step too: `python -m app.render.images K8S_VERSION [MANIFEST...]` prints one full
reference a line (the Dockerfile copies exactly those into the baked layout).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.cluster import Cluster

KUBE_VIP_IMAGE = "ghcr.io/kube-vip/kube-vip:v1.2.3"
K8S_IMAGES = Path(__file__).with_name("k8s-images.yaml")
# Every registry the built-in set pulls from; each gets a hosts.toml on the nodes: the appliance
# first, the upstream after it (a site with internet loses nothing, one without needs nothing more).
MIRRORED_REGISTRIES = ("registry.k8s.io", "ghcr.io", "quay.io", "docker.io")
UPSTREAM = {"docker.io": "https://registry-1.docker.io"}  # Docker Hub's API is not at docker.io
KUBEADM_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")
DOCKER_HUB = "docker.io"
POD_SPEC_LISTS = ("initContainers", "containers", "ephemeralContainers")


class UnsupportedVersion(Exception):
    """No verified kubeadm image list for this Kubernetes version."""


@dataclass(frozen=True)
class Image:
    ref: str  # full reference: registry/repository:tag, optionally @digest
    why: str  # what needs it: kubeadm, kube-vip, cni/flannel.yaml, ...


def registry_mirrors() -> list[dict[str, str]]:
    """For the Ignition template: each mirrored registry and its upstream URL (the fallback)."""
    return [{"registry": r, "upstream": UPSTREAM.get(r, f"https://{r}")} for r in MIRRORED_REGISTRIES]


def supported_versions() -> dict[str, dict]:
    return yaml.safe_load(K8S_IMAGES.read_text()) or {}


def kubeadm_versions(k8s_version: str) -> dict | None:
    """pause/coredns/etcd tags for a version, or None when none are recorded."""
    return supported_versions().get(k8s_version)


def kubeadm_images(k8s_version: str) -> list[str]:
    """What `kubeadm config images list --kubernetes-version k8s_version` prints."""
    versions = kubeadm_versions(k8s_version)
    if versions is None:
        known = ", ".join(sorted(supported_versions())) or "none"
        raise UnsupportedVersion(f"no verified kubeadm image list for Kubernetes {k8s_version} "
                                 f"(known: {known}); add it to {K8S_IMAGES.name} from kubeadm's constants")
    return [*(f"registry.k8s.io/{name}:{k8s_version}" for name in KUBEADM_COMPONENTS),
            f"registry.k8s.io/coredns/coredns:{versions['coredns']}",
            f"registry.k8s.io/pause:{versions['pause']}", f"registry.k8s.io/etcd:{versions['etcd']}"]


def sandbox_image(k8s_version: str) -> str:
    """kubeadm's pause image for containerd's sandbox_image ("" when unknown: containerd's default)."""
    versions = kubeadm_versions(k8s_version)
    return f"registry.k8s.io/pause:{versions['pause']}" if versions else ""


def full_reference(image: str) -> str:
    """Docker's normalisation: `redis:7` -> `docker.io/library/redis:7`, `quay.io/x/y` -> `...:latest`."""
    name, at, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    name, tag = (name[:colon], name[colon + 1:]) if colon > slash else (name, "" if at else "latest")
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = f"{DOCKER_HUB}/{name if rest else 'library/' + name}"
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if at else "")


def manifest_images(path: Path) -> list[str]:
    """Every container image the objects in a multi-document YAML manifest run, in order, once."""
    found: list[str] = []
    for document in yaml.safe_load_all(path.read_text()):
        for image in _pod_images(document):
            if image not in found:
                found.append(image)
    return [full_reference(image) for image in found]


def _pod_images(node) -> list[str]:
    """Images under any pod spec in an object, however deep (Deployment, DaemonSet, CronJob, Pod...)."""
    if isinstance(node, list):
        return [image for item in node for image in _pod_images(item)]
    if not isinstance(node, dict):
        return []
    images = [c["image"] for key in POD_SPEC_LISTS if isinstance(node.get(key), list)
              for c in node[key] if isinstance(c, dict) and isinstance(c.get("image"), str)]
    return images + [image for key, value in node.items() if key not in POD_SPEC_LISTS
                     for image in _pod_images(value)]


def cluster_images(cluster: Cluster, manifests: dict[str, Path | None]) -> list[Image]:
    """Every image the cluster's nodes pull, each once, with what needs it first.

    `manifests` are what `wait` would apply, by label (`cni/flannel.yaml`, `gitops/argo-cd.yaml`,
    `addons/x.yaml`); None for one that is needed but absent. Raises UnsupportedVersion."""
    images = [Image(ref, "kubeadm") for ref in kubeadm_images(cluster.cluster.k8s_version)]
    if cluster.control_plane_vip is not None:
        images.append(Image(KUBE_VIP_IMAGE, "kube-vip"))
    for label, path in manifests.items():
        images += [Image(ref, label) for ref in manifest_images(path)] if path is not None else []
    seen: set[str] = set()
    return [i for i in images if not (i.ref in seen or seen.add(i.ref))]


def main(argv: list[str]) -> int:
    """Build step: the full set an image bakes for one Kubernetes version and its manifests."""
    if not argv:
        print("usage: python -m app.render.images K8S_VERSION [MANIFEST...]", file=sys.stderr)
        return 2
    try:
        refs = [*kubeadm_images(argv[0]), KUBE_VIP_IMAGE]
    except UnsupportedVersion as exc:
        print(exc, file=sys.stderr)
        return 1
    for manifest in argv[1:]:
        refs += manifest_images(Path(manifest))
    print("\n".join(dict.fromkeys(refs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
