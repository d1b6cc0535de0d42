"""The OCI layout reader on disk: what it serves, what it refuses and says why, path confinement,
and re-reading index.json only when it changed."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from app.oci.layout import OCI_INDEX, OCI_MANIFEST, Layout, LayoutError, blob_path, load_catalog
from tests.support.oci import blob_bytes, image, multi_arch, put_json, write_index

PAUSE = "registry.k8s.io/pause"


def test_tags_manifests_and_reachable_blobs(tmp_path):
    pause = image(tmp_path, [b"pause layer"])
    cilium = multi_arch(tmp_path, {"amd64": [b"cilium amd64"], "arm64": [b"cilium arm64"]})
    write_index(tmp_path, {f"{PAUSE}:3.10": pause, "quay.io/cilium/cilium:v1.15.0": cilium,
                           "busybox:1.36": pause})
    catalog = load_catalog(tmp_path)
    assert catalog.problems == []
    assert catalog.tags == {PAUSE: {"3.10": pause["digest"]}, "quay.io/cilium/cilium": {"v1.15.0": cilium["digest"]},
                            "docker.io/library/busybox": {"1.36": pause["digest"]}}
    assert catalog.manifest(PAUSE, "3.10").body == blob_bytes(tmp_path, pause["digest"])
    assert catalog.manifest(PAUSE, "3.10").media_type == OCI_MANIFEST
    assert catalog.manifest("quay.io/cilium/cilium", "v1.15.0").media_type == OCI_INDEX
    index = json.loads(blob_bytes(tmp_path, cilium["digest"]))
    arm = index["manifests"][1]["digest"]
    assert catalog.manifest("quay.io/cilium/cilium", arm).media_type == OCI_MANIFEST
    arm_layer = json.loads(blob_bytes(tmp_path, arm))["layers"][0]["digest"]
    assert catalog.has_blob("quay.io/cilium/cilium", arm_layer)
    # blobs and manifests belong to the repositories whose images use them, as a registry links them
    assert not catalog.has_blob(PAUSE, arm_layer)
    assert catalog.manifest(PAUSE, arm) is None
    assert catalog.manifest(PAUSE, "v1.15.0") is None


def test_a_corrupt_manifest_drops_its_tag_and_says_so(tmp_path):
    good = image(tmp_path, [b"good"])
    bad = image(tmp_path, [b"bad"])
    path = tmp_path / "blobs" / "sha256" / bad["digest"].split(":")[1]
    path.write_bytes(path.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    write_index(tmp_path, {f"{PAUSE}:good": good, f"{PAUSE}:bad": bad})
    catalog = load_catalog(tmp_path)
    assert catalog.tags == {PAUSE: {"good": good["digest"]}}
    assert any("does not match its digest" in p and f"{PAUSE}:bad" in p for p in catalog.problems)


def test_a_bare_tag_ref_name_is_reported_not_guessed(tmp_path):
    write_index(tmp_path, {"3.10": image(tmp_path, [b"x"])})
    catalog = load_catalog(tmp_path)
    assert catalog.tags == {}
    assert "'3.10' is not a full reference" in catalog.problems[0]


def test_a_missing_layer_is_reported_but_the_image_is_listed(tmp_path):
    manifest = image(tmp_path, [b"lost layer"])
    layer = json.loads(blob_bytes(tmp_path, manifest["digest"]))["layers"][0]["digest"]
    (tmp_path / "blobs" / "sha256" / layer.split(":")[1]).unlink()
    write_index(tmp_path, {f"{PAUSE}:3.10": manifest})
    catalog = load_catalog(tmp_path)
    assert PAUSE in catalog.tags
    assert catalog.problems == [f"manifest {manifest['digest']}: blob {layer} is missing from the layout"]


def test_a_missing_platform_leaves_the_others_served(tmp_path):
    index = multi_arch(tmp_path, {"amd64": [b"a"], "arm64": [b"b"]})
    arm = json.loads(blob_bytes(tmp_path, index["digest"]))["manifests"][1]["digest"]
    (tmp_path / "blobs" / "sha256" / arm.split(":")[1]).unlink()
    write_index(tmp_path, {f"{PAUSE}:3.10": index})
    catalog = load_catalog(tmp_path)
    assert catalog.manifest(PAUSE, "3.10") is not None and catalog.manifest(PAUSE, arm) is None
    assert len(catalog.problems) == 1 and arm in catalog.problems[0]


def test_a_manifest_with_an_unknown_media_type_is_refused(tmp_path):
    weird = put_json(tmp_path, {"schemaVersion": 2, "mediaType": "text/plain"}, "text/plain")
    write_index(tmp_path, {f"{PAUSE}:3.10": weird})
    catalog = load_catalog(tmp_path)
    assert catalog.tags == {} and "neither an image manifest nor an index" in catalog.problems[0]


@pytest.mark.parametrize("broken", ["no-marker", "not-json", "no-manifests"])
def test_not_a_layout_is_a_clear_error(tmp_path, broken):
    write_index(tmp_path, {})
    if broken == "no-marker":
        (tmp_path / "oci-layout").unlink()
    elif broken == "not-json":
        (tmp_path / "index.json").write_text("{")
    else:
        (tmp_path / "index.json").write_text('{"schemaVersion": 2}')
    with pytest.raises(LayoutError, match="oci-layout|index.json"):
        load_catalog(tmp_path)
    assert Layout(tmp_path).catalog().tags == {}  # served as empty, never a traceback


def test_blob_paths_stay_inside_blobs(tmp_path):
    write_index(tmp_path, {})
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside")
    digest = hashlib.sha256(b"outside").hexdigest()
    (tmp_path / "blobs" / "sha256").mkdir(parents=True)
    os.symlink(secret, tmp_path / "blobs" / "sha256" / digest)
    assert blob_path(tmp_path, f"sha256:{digest}") is None  # a symlink out of blobs/ is refused
    inside = image(tmp_path, [b"inside"])["digest"]
    other = hashlib.sha256(b"alias").hexdigest()
    os.symlink(inside.split(":")[1], tmp_path / "blobs" / "sha256" / other)
    assert blob_path(tmp_path, f"sha256:{other}") is not None  # one inside blobs/ is followed
    for bad in ("sha256:../../secret", "sha256:" + "AB" * 32, "../secret", "sha256:" + digest[:-1]):
        assert blob_path(tmp_path, bad) is None


def test_a_layer_linked_out_of_blobs_is_reported_missing(tmp_path):
    outside = tmp_path / "outside"
    outside.write_bytes(b"layer")
    manifest = image(tmp_path, [b"layer"])
    layer_file = tmp_path / "blobs" / "sha256" / hashlib.sha256(b"layer").hexdigest()
    layer_file.unlink()
    os.symlink(outside, layer_file)
    write_index(tmp_path, {f"{PAUSE}:3.10": manifest})
    assert any("missing from the layout" in p for p in load_catalog(tmp_path).problems)


def test_index_json_is_reread_only_when_it_changes(tmp_path):
    write_index(tmp_path, {f"{PAUSE}:3.9": image(tmp_path, [b"old"])})
    layout = Layout(tmp_path, recheck=0)
    first = layout.catalog()
    assert layout.catalog() is first  # unchanged file: the same catalogue object, no re-walk
    write_index(tmp_path, {f"{PAUSE}:3.9": image(tmp_path, [b"old"]), f"{PAUSE}:3.10": image(tmp_path, [b"new"])})
    os.utime(tmp_path / "index.json", ns=(1, 1))  # a different mtime even on a coarse clock
    assert set(layout.catalog().tags[PAUSE]) == {"3.9", "3.10"}


def test_recheck_limits_how_often_the_disk_is_looked_at(tmp_path):
    write_index(tmp_path, {f"{PAUSE}:3.9": image(tmp_path, [b"old"])})
    layout = Layout(tmp_path, recheck=3600)
    layout.catalog()
    write_index(tmp_path, {f"{PAUSE}:3.10": image(tmp_path, [b"new"])})
    os.utime(tmp_path / "index.json", ns=(1, 1))
    assert set(layout.catalog().tags[PAUSE]) == {"3.9"}  # within the recheck window: not re-read

