"""The add-on pins in app/asset_scripts/addon-pins against the real release trees: the zip the Go
module proxy serves has the pinned sha256, the Go checksum database vouches for it (the h1: it
reports is the pinned one, and is the zip's own dirhash), and the manifest at the tag names the
release's images (the release asset is built from it)."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from tests.support.addon_modules import addon, dirhash_h1, member, module_zip

EXPECTED_IMAGES = {
    "FLANNEL": {"ghcr.io/flannel-io/flannel:{v}", "ghcr.io/flannel-io/flannel-cni-plugin:v1.9.1-flannel3"},
    "ARGOCD": {"quay.io/argoproj/argocd:{v}", "ghcr.io/dexidp/dex:v2.46.0",
               "public.ecr.aws/docker/library/redis:8.10.1-alpine"},
}


def images_of(manifest: bytes) -> set[str]:
    found = set()
    for doc in yaml.safe_load_all(manifest):
        spec = ((doc or {}).get("spec") or {}).get("template", {}).get("spec", {})
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            found.add(container["image"])
    return found


@pytest.mark.parametrize("key", ["FLANNEL", "ARGOCD"])
def test_pins_match_the_checksum_database_and_the_release(key):
    a = addon(key)
    zip_path, sum_db = module_zip(a)
    assert hashlib.sha256(zip_path.read_bytes()).hexdigest() == a.sha256
    assert sum_db == a.h1 == dirhash_h1(zip_path)
    assert images_of(member(zip_path, a, a.manifest)) == {i.format(v=a.version) for i in EXPECTED_IMAGES[key]}


def test_the_h1_check_can_fail(tmp_path):
    """dirhash_h1 sees a change to one file of the tree (else the test above proves nothing)."""
    import zipfile
    a = addon("FLANNEL")
    zip_path, _ = module_zip(a)
    changed = tmp_path / "changed.zip"
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(changed, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            out.writestr(name, data.replace(b"flannel:v", b"flannel:w") if name.endswith(a.manifest) else data)
    assert dirhash_h1(changed) != a.h1
