"""The appliance image as the tests build it, with whichever engine (Docker or podman): air-gapped like a
user's build can be — base image from debootstrap when no registry is reachable, stand-in assets with
SHA256SUMS (ASSETS=context), stand-in container images (IMAGES=context) and a wheelhouse (WHEELHOUSE).
The container tier and the Docker end-to-end test in the lab both use it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.engines import Engine, debootstrap_tarball, import_rootfs
from tests.support.paths import REPO

TAG = "localhost/bootstrap-node:test"
BASE = "localhost/debian:bookworm-slim"
CONTEXT_ASSETS = REPO / "build" / "container-assets"
CONTEXT_IMAGES = REPO / "build" / "container-images"
PAYLOAD = "localhost/bootstrap-node-payload:test"
WHEELS = REPO / "build" / "wheels"
STANDINS = ["flatcar/4593.2.5/flatcar_production_pxe.vmlinuz", "flatcar/4593.2.5/flatcar_production_pxe_image.cpio.gz",
            "flatcar/4593.2.5/flatcar_production_image.bin.bz2", "flatcar/4593.2.5/flatcar_production_image.bin.bz2.sig",
            "sysext/kubernetes-v1.36.3-x86-64.raw",
            "sysext/containerd-2.0.4-x86-64.raw", "cni/flannel.yaml"]
SYSEXTS = "containerd-2.0.4"  # baked from the context, like a bakery download
NOT_SERVED = "kubernetes-v1.36.4-x86-64.raw"  # in the context's SHA256SUMS (as in the bakery's), not baked


def base_image(client, engine: Engine) -> str:
    """A bookworm root file system from debootstrap when there is no registry to pull from."""
    if not client.image.exists(BASE):
        import_rootfs(engine, debootstrap_tarball(), BASE)
    return BASE


def context_inputs() -> None:
    shutil.rmtree(CONTEXT_ASSETS, ignore_errors=True)
    for rel in STANDINS:
        path = CONTEXT_ASSETS / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((REPO / "tests" / "fixtures" / "kube-flannel.yml").read_bytes() if rel.startswith("cni/")
                         else f"stand-in {rel}\n".encode())
    for directory in {(CONTEXT_ASSETS / rel).parent for rel in STANDINS}:
        lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(directory.iterdir())]
        if directory.name == "sysext":
            lines.append(f"{'0' * 64}  {NOT_SERVED}\n")
        (directory / "SHA256SUMS").write_text("".join(lines))
    if not any(WHEELS.glob("*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(WHEELS), "-c",
                        str(REPO / "requirements.lock"), str(REPO)], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(WHEELS),
                        "setuptools>=68"], check=True, capture_output=True)
    for stale in WHEELS.glob("bootstrap_node-*.whl"):
        stale.unlink()  # the image builds the app from this checkout's source


def context_images() -> list[str]:
    """An OCI layout with every image the app says the image must bake (kubeadm's for v1.36.3, kube-vip,
    the stand-in flannel manifest's, the built-in add-ons'), all one tiny podman-built image under each
    name, whichever engine then builds the appliance. Returns the refs."""
    from app.render.images import KUBE_VIP_IMAGE, kubeadm_images, manifest_images
    if shutil.which("skopeo") is None or shutil.which("podman") is None:
        pytest.skip("needs podman and skopeo to make the image layout the build takes (IMAGES=context)")
    addons = sorted((REPO / "app" / "templates" / "addons").glob("*.yaml"))  # kured's, baked like the CNI's
    refs = [*kubeadm_images("v1.36.3"), KUBE_VIP_IMAGE,
            *manifest_images(REPO / "tests" / "fixtures" / "kube-flannel.yml"),
            *(ref for manifest in addons for ref in manifest_images(manifest))]
    shutil.rmtree(CONTEXT_IMAGES, ignore_errors=True)
    payload = REPO / "build" / "payload"
    payload.mkdir(parents=True, exist_ok=True)
    (payload / "Containerfile").write_text("FROM scratch\nCOPY payload.txt /payload.txt\n")
    (payload / "payload.txt").write_text("stand-in image\n")
    subprocess.run(["podman", "build", "-q", "--platform", "linux/amd64", "-t", PAYLOAD, str(payload)], check=True,
                   capture_output=True)
    for ref in refs:
        subprocess.run(["skopeo", "copy", "-q", f"containers-storage:{PAYLOAD}", f"oci:{CONTEXT_IMAGES}:{ref}"],
                       check=True, capture_output=True)
    return refs


def build_args(base: str, assets_dir: Path = CONTEXT_ASSETS) -> dict[str, str]:
    """The air-gapped build's arguments: everything from the context, nothing downloaded."""
    return {"BASE_IMAGE": base, "ASSETS": "context", "ASSETS_DIR": str(assets_dir.relative_to(REPO)),
            "WHEELHOUSE": "build/wheels", "IMAGES": "context", "IMAGES_DIR": "build/container-images",
            "SYSEXTS": SYSEXTS}


def build_image(engine: Engine):
    """Build the Dockerfile with `engine` from the context inputs; returns (client, inspected image)."""
    from python_on_whales import DockerClient
    client = DockerClient(client_call=engine.call)
    base = base_image(client, engine)
    context_inputs()
    context_images()
    started = time.monotonic()
    client.legacy_build(REPO, file=REPO / "Dockerfile", tags=[TAG], network="host", build_args=build_args(base))
    built = client.image.inspect(TAG)
    report = REPO / "build" / f"container-report-{engine.name}.txt"
    report.write_text(f"engine {engine.name}; build {time.monotonic() - started:.0f}s; "
                      f"size {built.size / 1e6:.0f} MB\n")
    return client, built


def baked_digest(ref: str) -> str:
    index = json.loads((CONTEXT_IMAGES / "index.json").read_text())
    return next(m["digest"] for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == ref)


def context_images_refs() -> list[str]:
    index = json.loads((CONTEXT_IMAGES / "index.json").read_text())
    return [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]
