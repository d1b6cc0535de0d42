"""An OCI image layout directory (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`) read as a
registry's catalogue (the name and digest rules are in `reference.py`).

`index.json` names each image with a FULL reference in `org.opencontainers.image.ref.name`
(`registry.k8s.io/pause:3.10`, which is what `skopeo copy ... oci:DIR:registry.k8s.io/pause:3.10`
writes), so one layout holds images from every upstream registry. The catalogue is built by walking
index.json -> (image index ->) manifests -> config and layers: manifests are small, so they are read,
verified against their digest and kept in memory; config and layer blobs are only stat'ed here and
sent from disk per request. A blob is served only to a repository whose images reach it, as a
registry links blobs per repository. index.json is looked at (one stat) at most once per `recheck`
seconds and the walk is redone only when it changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.confine import confine
from app.oci.reference import parse_reference, valid_digest
from app.recheck import Clock, Recheck

log = logging.getLogger("bootstrap_node.registry")

REF_NAME = "org.opencontainers.image.ref.name"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MAX_MANIFEST_BYTES = 4 << 20  # distribution's own limit; anything larger is not a manifest
MAX_INDEX_DEPTH = 4  # index.json -> index -> manifest is the deepest real layouts go

# -- the catalogue --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    body: bytes


@dataclass
class Catalog:
    tags: dict[str, dict[str, str]] = field(default_factory=dict)  # repository key -> tag -> digest
    manifests: dict[str, Manifest] = field(default_factory=dict)  # digest -> manifest or index
    reachable: dict[str, set[str]] = field(default_factory=dict)  # repository key -> every digest its images use
    problems: list[str] = field(default_factory=list)

    def manifest(self, repository: str, reference: str) -> Manifest | None:
        """A manifest by tag or digest, only as that repository's images name it."""
        digest = self.tags.get(repository, {}).get(reference, reference)
        if digest not in self.reachable.get(repository, ()):
            return None
        return self.manifests.get(digest)

    def has_blob(self, repository: str, digest: str) -> bool:
        return digest in self.reachable.get(repository, ())


class LayoutError(Exception):
    """The layout (or one descriptor in it) cannot be served; the message says why."""


def blob_path(root: Path, digest: str) -> Path | None:
    """The file of a blob, or None for a malformed digest or a file that resolves outside blobs/."""
    if not valid_digest(digest):
        return None
    algorithm, hexdigest = digest.split(":", 1)
    return confine(root / "blobs", f"{algorithm}/{hexdigest}")


def read_verified(root: Path, digest: str, size: int | None, limit: int = MAX_MANIFEST_BYTES) -> bytes:
    """A small blob's bytes, checked against its digest (and descriptor size when given)."""
    path = blob_path(root, digest)
    if path is None:
        raise LayoutError(f"{digest!r} is not a sha256/sha512 digest of a file under blobs/")
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        raise LayoutError(f"blob {digest}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise LayoutError(f"blob {digest} is larger than {limit} bytes: not a manifest")
    if size is not None and len(data) != size:
        raise LayoutError(f"blob {digest} has {len(data)} bytes, its descriptor says {size}")
    algorithm, expected = digest.split(":", 1)
    if hashlib.new(algorithm, data).hexdigest() != expected:
        raise LayoutError(f"blob {digest} does not match its digest (corrupt or altered)")
    return data


def _descriptor(value: object, where: str) -> tuple[str, str, int | None]:
    if not isinstance(value, dict):
        raise LayoutError(f"{where}: a descriptor must be a JSON object")
    digest, media_type, size = value.get("digest"), value.get("mediaType", ""), value.get("size")
    if not isinstance(digest, str) or not valid_digest(digest):
        raise LayoutError(f"{where}: digest {digest!r} is not a sha256/sha512 digest")
    if not isinstance(media_type, str) or (size is not None and not isinstance(size, int)):
        raise LayoutError(f"{where}: mediaType must be a string and size an integer")
    return digest, media_type, size


class _Walker:
    """Follows one tagged descriptor down to its layers, filling the catalogue."""

    def __init__(self, root: Path, catalog: Catalog):
        self.root, self.catalog = root, catalog

    def walk(self, digest: str, media_type: str, size: int | None, reached: set[str], depth: int = 0) -> None:
        reached.add(digest)
        known = self.catalog.manifests.get(digest)
        if known is not None:
            self._children(known, reached, depth)
            return
        body = read_verified(self.root, digest, size)
        try:
            data = json.loads(body)
        except ValueError:
            raise LayoutError(f"manifest {digest} is not JSON") from None
        if not isinstance(data, dict):
            raise LayoutError(f"manifest {digest} is not a JSON object")
        own = data.get("mediaType")
        # The manifest's own mediaType is what clients check; the descriptor's stands in when absent.
        kind = own if isinstance(own, str) and own else media_type
        if kind not in MANIFEST_TYPES | INDEX_TYPES:
            raise LayoutError(f"manifest {digest}: media type {kind!r} is neither an image manifest nor an index")
        manifest = Manifest(digest, kind, body)
        self.catalog.manifests[digest] = manifest
        self._children(manifest, reached, depth)

    def _children(self, manifest: Manifest, reached: set[str], depth: int) -> None:
        data = json.loads(manifest.body)
        if manifest.media_type in INDEX_TYPES:
            if depth >= MAX_INDEX_DEPTH:
                raise LayoutError(f"index {manifest.digest}: indexes nested deeper than {MAX_INDEX_DEPTH}")
            for n, child in enumerate(data.get("manifests") or []):
                digest, media_type, size = _descriptor(child, f"index {manifest.digest} manifests[{n}]")
                try:
                    self.walk(digest, media_type, size, reached, depth + 1)
                except LayoutError as exc:  # one missing platform must not hide the others
                    reached.discard(digest)
                    self.catalog.problems.append(str(exc))
            return
        for n, child in enumerate([data.get("config")] + list(data.get("layers") or [])):
            part = "config" if n == 0 else f"layers[{n - 1}]"
            digest, _, _ = _descriptor(child, f"manifest {manifest.digest} {part}")
            reached.add(digest)
            path = blob_path(self.root, digest)
            if path is None or not path.is_file():
                self.catalog.problems.append(f"manifest {manifest.digest}: blob {digest} is missing from the layout")


def load_catalog(root: Path) -> Catalog:
    """Read and verify the whole layout. Problems with single images are collected, not raised;
    a layout that is not one at all raises LayoutError."""
    try:
        marker = json.loads((root / "oci-layout").read_bytes())
        index = json.loads((root / "index.json").read_bytes())
    except (OSError, ValueError) as exc:
        raise LayoutError(f"{root} is not an OCI image layout (needs oci-layout and index.json): {exc}") from None
    if not isinstance(marker, dict) or not isinstance(marker.get("imageLayoutVersion"), str):
        raise LayoutError(f"{root / 'oci-layout'}: no imageLayoutVersion")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise LayoutError(f"{root / 'index.json'}: no manifests list")
    catalog = Catalog()
    walker = _Walker(root, catalog)
    for n, entry in enumerate(index["manifests"]):
        where = f"index.json manifests[{n}]"
        ref = (entry.get("annotations") or {}).get(REF_NAME) if isinstance(entry, dict) else None
        parsed = parse_reference(ref) if isinstance(ref, str) else None
        if parsed is None:
            catalog.problems.append(f"{where}: {REF_NAME} {ref!r} is not a full reference like "
                                    "registry.k8s.io/pause:3.10 (skopeo copy ... oci:DIR:REGISTRY/NAME:TAG)")
            continue
        repository, tag = parsed
        reached: set[str] = set()
        try:
            digest, media_type, size = _descriptor(entry, where)
            walker.walk(digest, media_type, size, reached)
        except LayoutError as exc:
            catalog.problems.append(f"{ref}: {exc}")
            continue
        if tag in catalog.tags.get(repository, {}):
            catalog.problems.append(f"{ref} is named twice in index.json; the later entry wins")
        catalog.tags.setdefault(repository, {})[tag] = digest
        catalog.reachable.setdefault(repository, set()).update(reached)
    return catalog


class Layout:
    """One layout directory, re-read when index.json changes; safe to share between requests."""

    def __init__(self, root: Path, recheck: float = 1.0, clock: Clock = time.monotonic):
        self.root = root
        self._catalog = Catalog()
        self._signature: tuple | None = None
        self._looked = Recheck(recheck, clock)

    def catalog(self) -> Catalog:
        if not self._looked.due():
            return self._catalog
        self._looked.done()
        signature = self._index_signature()
        if signature != self._signature:
            self._signature = signature
            self._catalog = self._reload()
        return self._catalog

    def _index_signature(self) -> tuple:
        try:
            st = os.stat(self.root / "index.json")
        except OSError:
            return ()
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _reload(self) -> Catalog:
        try:
            catalog = load_catalog(self.root)
        except LayoutError as exc:
            log.warning("serving no images: %s", exc)
            return Catalog(problems=[str(exc)])
        for problem in catalog.problems:
            log.warning("images: %s", problem)
        log.info("images: %d tags in %d repositories from %s",
                 sum(len(t) for t in catalog.tags.values()), len(catalog.tags), self.root)
        return catalog
