"""/v2/: the pull side of the OCI distribution spec over an OCI image layout, on the HTTP port.

Nodes without internet pull kubeadm's, the CNI's and the add-ons' images from here: containerd
is given hosts.toml files naming this server as a mirror of registry.k8s.io, ghcr.io, quay.io...
and asks `/v2/pause/manifests/3.10?ns=registry.k8s.io`; skopeo or podman pointed at us directly
ask `/v2/registry.k8s.io/pause/manifests/3.10`. Both land on the same catalogue entry
(see oci_layout.repository_key). Read-only: every write method gets 405.

Manifests are answered from memory (read and verified when index.json changed); blobs are sent
from disk with sendfile, like /assets. Every GET that sends content calls `on_pull`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from app.oci.layout import Catalog, Layout, blob_path
from app.oci.reference import repository_key, valid_digest
from app.serve.transfer.sender import send_file

log = logging.getLogger("bootstrap_node.registry")

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
READ_METHODS = ("GET", "HEAD")
MSG_NAME_UNKNOWN = "repository name not known to registry"
MSG_MANIFEST_UNKNOWN = "manifest unknown"
MSG_BLOB_UNKNOWN = "blob unknown to registry"
MSG_UNSUPPORTED = "this registry is read-only: only GET and HEAD"
MSG_NOT_FOUND = "not a registry route"

# on_pull(remote_ip, image_ref, digest, bytes): image_ref is `registry/repository:tag` for a
# manifest asked by tag, `registry/repository@digest` for anything asked by digest.
OnPull = Callable[[str, str, str, int], None]


class Registry:
    def __init__(self, layout: Layout, on_pull: OnPull | None = None):
        self.layout, self.on_pull = layout, on_pull

    async def version_check(self, request: web.Request) -> web.StreamResponse:
        if request.method not in READ_METHODS:
            return unsupported()
        return web.json_response({}, headers=API_VERSION)

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        """/v2/<name>/manifests/<reference>, /v2/<name>/blobs/<digest>, /v2/<name>/tags/list."""
        if request.method not in READ_METHODS:
            return unsupported()
        name, _, reference = request.match_info["tail"].rpartition("/")
        name, _, kind = name.rpartition("/")
        if (kind, reference) != ("tags", "list") and kind not in ("manifests", "blobs"):
            return error(404, "NAME_UNKNOWN", MSG_NOT_FOUND)
        repository = repository_key(name, request.query.get("ns"))
        catalog = self.layout.catalog()
        if repository is None or repository not in catalog.tags:
            return error(404, "NAME_UNKNOWN", MSG_NAME_UNKNOWN, {"name": name})
        if kind == "tags":
            return web.json_response({"name": name, "tags": sorted(catalog.tags[repository])}, headers=API_VERSION)
        if kind == "manifests":
            return self._manifest(request, catalog, repository, reference)
        return await self._blob(request, catalog, repository, reference)

    def _manifest(self, request: web.Request, catalog: Catalog, repository: str,
                  reference: str) -> web.StreamResponse:
        manifest = catalog.manifest(repository, reference)
        if manifest is None:
            return error(404, "MANIFEST_UNKNOWN", MSG_MANIFEST_UNKNOWN, {"name": repository, "reference": reference})
        response = web.Response(body=manifest.body, headers={**API_VERSION, **_digest_headers(manifest.digest)},
                                content_type=manifest.media_type)
        if request.method == "GET":
            separator = "@" if valid_digest(reference) else ":"
            self._pulled(request, f"{repository}{separator}{reference}", manifest.digest, len(manifest.body))
        return response

    async def _blob(self, request: web.Request, catalog: Catalog, repository: str,
                    digest: str) -> web.StreamResponse:
        path = blob_path(self.layout.root, digest) if catalog.has_blob(repository, digest) else None
        try:
            f = path.open("rb") if path is not None else None
        except OSError:
            f = None
        if f is None:
            return error(404, "BLOB_UNKNOWN", MSG_BLOB_UNKNOWN, {"digest": digest})
        with f:
            response = await send_file(request, f, "application/octet-stream",
                                       {**API_VERSION, **_digest_headers(digest)})
        if request.method == "GET" and response.status in (200, 206):
            self._pulled(request, f"{repository}@{digest}", digest, response.content_length or 0)
        return response

    def _pulled(self, request: web.Request, image_ref: str, digest: str, sent: int) -> None:
        if self.on_pull is None:
            return
        try:
            self.on_pull(request.remote or "", image_ref, digest, sent)
        except Exception:  # noqa: BLE001 - a broken event hook must not fail the pull
            log.exception("on_pull hook failed for %s", image_ref)


def _digest_headers(digest: str) -> dict[str, str]:
    return {"Docker-Content-Digest": digest, "ETag": f'"{digest}"'}


def error(status: int, code: str, message: str, detail: dict | None = None) -> web.Response:
    """The distribution spec's error body: {"errors": [{"code", "message", "detail"}]}."""
    body = {"errors": [{"code": code, "message": message, "detail": detail or {}}]}
    return web.Response(text=json.dumps(body), status=status, content_type="application/json", headers=API_VERSION)


def unsupported() -> web.Response:
    response = error(405, "UNSUPPORTED", MSG_UNSUPPORTED)
    response.headers["Allow"] = ", ".join(READ_METHODS)
    return response


def add_routes(app: web.Application, layout: Path | None, on_pull: OnPull | None = None,
               recheck: float = 1.0) -> Registry | None:
    """Serve the layout at /v2/ in `app`; nothing when `layout` is None."""
    if layout is None:
        return None
    registry = Registry(Layout(layout, recheck=recheck), on_pull)
    for path in ("/v2", "/v2/"):
        app.router.add_route("*", path, registry.version_check)
    app.router.add_route("*", "/v2/{tail:.+}", registry.dispatch)
    return registry
