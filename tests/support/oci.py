"""Small OCI image layouts written byte by byte, for the registry tests that need no podman."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from app.oci.layout import OCI_INDEX, OCI_MANIFEST, REF_NAME

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def put_blob(layout: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = layout / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def put_json(layout: Path, document: dict, media_type: str) -> dict:
    return put_blob(layout, json.dumps(document, separators=(",", ":")).encode(), media_type)


def image(layout: Path, layers: list[bytes], arch: str = "amd64") -> dict:
    """An image manifest with its config and layers; returns the manifest's descriptor."""
    config = put_json(layout, {"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}},
                      CONFIG_TYPE)
    return put_json(layout, {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config,
                             "layers": [put_blob(layout, data, LAYER_TYPE) for data in layers]}, OCI_MANIFEST)


def multi_arch(layout: Path, per_arch: dict[str, list[bytes]]) -> dict:
    children = [{**image(layout, layers, arch), "platform": {"architecture": arch, "os": "linux"}}
                for arch, layers in per_arch.items()]
    return put_json(layout, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, OCI_INDEX)


def write_index(layout: Path, named: dict[str, dict]) -> None:
    """index.json naming each descriptor with a full reference, as skopeo writes it."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entries = [{**descriptor, "annotations": {REF_NAME: ref}} for ref, descriptor in named.items()]
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))


def blob_bytes(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
