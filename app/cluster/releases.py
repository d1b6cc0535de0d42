"""Which Flatcar and Kubernetes releases a cluster may name, where Flatcar's live, and what `validate`
says about them.

Flatcar: flatcar-releases.txt records each known release with the channel it belongs to (a release
lives on its channel's server only: an LTS version fetched from the stable server is a 404). Kubernetes:
the supported minors are those with a kubeadm image list in app/render/k8s-images.yaml (the table the
image build and `images` use); a version outside them, or a patch release without its own list, would
install without a pinned pause image, so both are errors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from app.cluster.fields import K8S_VERSION
from app.cluster.problems import Found
from app.cluster.rules import Nodes, Parsed
from app.layout import FLATCAR_ASSET_DIR

FLATCAR_RELEASES = Path(__file__).with_name("flatcar-releases.txt")
# The table belongs to render (it pins the images); validate reads the very same file.
K8S_IMAGES = Path(__file__).parent.parent / "render" / "k8s-images.yaml"
BOARD = {"amd64": "amd64-usr", "arm64": "arm64-usr"}
# What flatcar-install fetches from its -b base; it refuses an image without its signature.
DISK_IMAGE = "flatcar_production_image.bin.bz2"
PXE_FILES = ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz")


@dataclass(frozen=True)
class FlatcarRelease:
    channel: str
    version: str
    containerd: str
    released: str  # YYYY-MM-DD
    arches: tuple[str, ...]


@functools.cache
def flatcar_releases() -> dict[str, FlatcarRelease]:
    """Every recorded release by version (a version belongs to one channel)."""
    out = {}
    for line in FLATCAR_RELEASES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            channel, version, containerd, released, arches = line.split()
            out[version] = FlatcarRelease(channel, version, containerd, released, tuple(arches.split(",")))
    return out


def newest(channel: str) -> FlatcarRelease:
    return max((r for r in flatcar_releases().values() if r.channel == channel), key=lambda r: _key(r.version))


def flatcar_url(channel: str, version: str, arch: str = "amd64") -> str:
    """Where a release's files are published: its channel's server (as fetch-and-verify builds it)."""
    return f"https://{channel}.release.flatcar-linux.net/{BOARD[arch]}/{version}/"


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("."))


def flatcar_problem(version: str, channel: str) -> str | None:
    """Why `version` on `channel` cannot be installed, with what to write instead; None when it can."""
    release = flatcar_releases().get(version)
    if release is not None and release.channel == channel:
        return None
    if release is not None:
        return (f"Flatcar {version} is a{'n' if release.channel in ('lts', 'alpha') else ''} {release.channel} "
                f"release, not {channel}: it is published at {flatcar_url(release.channel, version)} only. Set "
                f"flatcar_channel: {release.channel} (and build the image with --build-arg "
                f"FLATCAR_CHANNEL={release.channel}), or use {channel}'s {newest(channel).version}")
    return (f"Flatcar {version} is not a {channel} release bootstrap-node knows (its release data, "
            f"{FLATCAR_RELEASES.name}, lists {channel} up to {newest(channel).version}): use "
            f"{newest(channel).version}, or a newer release after adding it to that list from Flatcar's release "
            "data and rebuilding the image")


def flatcar_warning(version: str) -> str | None:
    release = flatcar_releases().get(version)
    if release is None or _key(release.containerd)[0] >= 2:
        return None
    return (f"Flatcar {version} ships containerd {release.containerd}; the 1.7 line's support ended in "
            f"September 2026 and newer kubelets drop what it needs: prefer stable {newest('stable').version} "
            f"(containerd {newest('stable').containerd})")


@functools.cache
def kubeadm_lists() -> tuple[str, ...]:
    """The Kubernetes versions with a kubeadm image list, oldest first."""
    table = yaml.safe_load(K8S_IMAGES.read_text()) or {}
    return tuple(sorted((v for v in table if K8S_VERSION.fullmatch(str(v))), key=_key))


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def k8s_problem(version: str) -> str | None:
    """Why Kubernetes `version` is not supported, with what to write instead; None when it is."""
    listed = kubeadm_lists()
    minors = list(dict.fromkeys(minor(v) for v in listed))
    if version in listed:
        return None
    if minor(version) not in minors:
        return (f"Kubernetes {minor(version)} is outside the supported minors ({', '.join(minors)}): use "
                f"{listed[-1]}, or another of {', '.join(listed)}")
    same = [v for v in listed if minor(v) == minor(version)]
    return (f"{version} has no kubeadm image list (pause, coredns, etcd pins) in k8s-images.yaml, so "
            f"air-gapped nodes could not start a pod: use {same[-1]}, or add its list (from `kubeadm config "
            "images list --kubernetes-version` of that release) and rebuild the image")


def release_checks(top: Parsed, nodes: Nodes, found: Found) -> None:
    spec = top.get("cluster") or {}
    if "k8s_version" in spec and (why := k8s_problem(spec["k8s_version"])):
        found.add(("cluster", "k8s_version"), why)
    if "flatcar_version" in spec and "flatcar_channel" in spec:
        version, channel = spec["flatcar_version"], spec["flatcar_channel"]
        if why := flatcar_problem(version, channel):
            found.add(("cluster", "flatcar_version"), why)
        elif why := flatcar_warning(version):
            found.warn(("cluster", "flatcar_version"), why)
        release = flatcar_releases().get(version)
        for i, node in nodes:
            if release and node.get("arch") and node["arch"] not in release.arches:
                found.add(("nodes", i, "arch"), f"Flatcar {version} has no {node['arch']} build")


def flatcar_asset_problems(version: str, arches: set[str], assets: Path) -> list[str]:
    """What the assets lack of a release: the PXE kernel and initrd nodes boot, the disk image
    flatcar-install writes, and its signature (without which flatcar-install stops: "Image signature
    unavailable")."""
    release = flatcar_releases().get(version)
    problems = []
    for arch in sorted(arches):
        where = assets / FLATCAR_ASSET_DIR[arch] / version
        source = flatcar_url(release.channel, version, arch) if release else "its channel's release server"
        for name in (*PXE_FILES, DISK_IMAGE, f"{DISK_IMAGE}.sig"):
            if not (where / name).is_file():
                why = " (flatcar-install refuses an image without its signature)" if name.endswith(".sig") else ""
                problems.append(f"{name} is not in {where}{why}: rebuild the image for this version, or put "
                                f"it there from {source}")
    return problems
