"""scripts/assets/fetch-images in context mode (what air-gapped builders and the container test use):
the baked set is exactly what the app lists, every blob matches its digest, images.lock pins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.render.images import KUBE_VIP_IMAGE, kubeadm_images, manifest_images
from tests.support.oci import image, write_index
from tests.support.paths import REPO

SCRIPT = REPO / "scripts" / "assets" / "fetch-images"
FLANNEL = REPO / "tests" / "fixtures" / "kube-flannel.yml"


@pytest.fixture()
def manifests(tmp_path) -> Path:
    (tmp_path / "manifests" / "cni").mkdir(parents=True)
    (tmp_path / "manifests" / "cni" / "flannel.yaml").write_bytes(FLANNEL.read_bytes())
    return tmp_path / "manifests"


def needed() -> list[str]:
    return [*kubeadm_images("v1.36.3"), KUBE_VIP_IMAGE, *manifest_images(FLANNEL)]


def layout(root: Path, refs: list[str]) -> dict[str, str]:
    named = {ref: image(root, [ref.encode()]) for ref in refs}
    write_index(root, named)
    return {ref: d["digest"] for ref, d in named.items()}


def fetch(context: Path, dest: Path, manifests: Path, mode: str = "context") -> subprocess.CompletedProcess:
    env = {**os.environ, "K8S_VERSION": "v1.36.3", "ARCH": "amd64", "PYTHON": sys.executable}
    return subprocess.run([str(SCRIPT), mode, str(context), str(dest), str(manifests)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_complete_layout_is_baked_and_recorded(tmp_path, manifests):
    digests = layout(tmp_path / "ctx", needed())
    result = fetch(tmp_path / "ctx", tmp_path / "images", manifests)
    assert result.returncode == 0, result.stderr
    lock = dict(line.split() for line in (tmp_path / "images" / "images.lock").read_text().splitlines())
    assert lock == digests
    assert (tmp_path / "images" / "index.json").read_bytes() == (tmp_path / "ctx" / "index.json").read_bytes()


def test_a_missing_image_fails_the_build(tmp_path, manifests):
    layout(tmp_path / "ctx", needed()[1:])
    result = fetch(tmp_path / "ctx", tmp_path / "images", manifests)
    assert result.returncode != 0 and f"{needed()[0]} is not in the layout" in result.stderr


def test_a_tampered_blob_fails_the_build(tmp_path, manifests):
    digests = layout(tmp_path / "ctx", needed())
    manifest = json_blob(tmp_path / "ctx", digests[needed()[0]])
    manifest.write_bytes(manifest.read_bytes() + b" ")
    result = fetch(tmp_path / "ctx", tmp_path / "images", manifests)
    assert result.returncode != 0 and "digest mismatch" in result.stderr


def test_images_lock_pins_manifests(tmp_path, manifests):
    layout(tmp_path / "ctx", needed())
    (tmp_path / "ctx" / "images.lock").write_text(f"{needed()[0]} sha256:{'0' * 64}\n")
    result = fetch(tmp_path / "ctx", tmp_path / "images", manifests)
    assert result.returncode != 0 and f"{needed()[0]}: expected sha256:{'0' * 64} (images.lock)" in result.stderr


def test_none_bakes_an_empty_directory_and_other_modes_fail(tmp_path, manifests):
    assert fetch(tmp_path / "ctx", tmp_path / "images", manifests, "none").returncode == 0
    assert list((tmp_path / "images").iterdir()) == []
    bad = fetch(tmp_path / "ctx", tmp_path / "other", manifests, "sideways")
    assert bad.returncode != 0 and "IMAGES must be download, context or none" in bad.stderr


def json_blob(root: Path, digest: str) -> Path:
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]
