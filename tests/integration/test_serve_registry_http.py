"""/v2/ over a real socket against a layout written byte by byte: the spec's pull side, both request
shapes (containerd's ?ns= mirror form and the direct form), errors, write methods, the pull hook
and the wiring into the serve app."""

from __future__ import annotations

import hashlib
import json
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from app.oci.layout import OCI_INDEX, OCI_MANIFEST
from app.serve.registry.handlers import add_routes
from tests.support.oci import blob_bytes, image, multi_arch, write_index
from tests.support.serve import running

LAYER = bytes(range(256)) * 64  # 16 KiB, so a Range has something to cut


@pytest.fixture
def layout(tmp_path) -> dict:
    root = tmp_path / "layout"
    pause = image(root, [LAYER])
    cilium = multi_arch(root, {"amd64": [b"cilium amd64 layer"], "arm64": [b"cilium arm64 layer"]})
    busybox = image(root, [b"busybox layer"])
    write_index(root, {"registry.k8s.io/pause:3.10": pause, "quay.io/cilium/cilium:v1.15.0": cilium,
                       "docker.io/library/busybox:1.36": busybox})
    manifest = json.loads(blob_bytes(root, pause["digest"]))
    return {"root": root, "pause": pause, "cilium": cilium, "layer": manifest["layers"][0]["digest"],
            "config": manifest["config"]["digest"]}


@asynccontextmanager
async def registry(root: Path, on_pull=None):
    app = web.Application()
    add_routes(app, root, on_pull=on_pull, recheck=0)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as session:
            yield session
    finally:
        await server.close()


async def error_code(response: aiohttp.ClientResponse) -> str:
    assert response.content_type == "application/json"
    return (await response.json())["errors"][0]["code"]


@pytest.mark.parametrize("path", ["/v2/", "/v2"])
async def test_version_check(layout, path):
    async with registry(layout["root"]) as http, http.get(path) as r:
        assert r.status == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("path", ["/v2/pause/manifests/3.10?ns=registry.k8s.io",
                                  "/v2/registry.k8s.io/pause/manifests/3.10"])
async def test_manifest_by_tag_in_both_request_shapes(layout, path):
    expected = blob_bytes(layout["root"], layout["pause"]["digest"])
    async with registry(layout["root"]) as http:
        async with http.get(path) as r:
            assert r.status == 200 and await r.read() == expected
            assert r.headers["Content-Type"] == OCI_MANIFEST
            assert r.headers["Docker-Content-Digest"] == layout["pause"]["digest"]
            assert int(r.headers["Content-Length"]) == len(expected)
        async with http.head(path) as r:
            assert r.status == 200 and await r.read() == b""
            assert int(r.headers["Content-Length"]) == len(expected)
            assert r.headers["Docker-Content-Digest"] == layout["pause"]["digest"]


async def test_docker_hub_names_with_and_without_library(layout):
    async with registry(layout["root"]) as http:
        for path in ("/v2/busybox/manifests/1.36?ns=docker.io", "/v2/library/busybox/manifests/1.36?ns=docker.io",
                     "/v2/library/busybox/manifests/1.36", "/v2/docker.io/busybox/manifests/1.36"):
            async with http.head(path) as r:
                assert r.status == 200, path


async def test_multi_arch_index_and_its_manifests_by_digest(layout):
    root, index = layout["root"], layout["cilium"]
    children = json.loads(blob_bytes(root, index["digest"]))["manifests"]
    async with registry(root) as http:
        async with http.get("/v2/cilium/cilium/manifests/v1.15.0?ns=quay.io") as r:
            assert r.headers["Content-Type"] == OCI_INDEX and await r.read() == blob_bytes(root, index["digest"])
        for child in children:
            async with http.get(f"/v2/cilium/cilium/manifests/{child['digest']}?ns=quay.io") as r:
                assert r.status == 200 and r.headers["Content-Type"] == OCI_MANIFEST
                assert hashlib.sha256(await r.read()).hexdigest() == child["digest"].split(":")[1]


async def test_blob_whole_head_and_range(layout):
    path = f"/v2/pause/blobs/{layout['layer']}?ns=registry.k8s.io"
    async with registry(layout["root"]) as http:
        async with http.get(path) as r:
            assert r.status == 200 and await r.read() == LAYER
            assert r.headers["Docker-Content-Digest"] == layout["layer"]
            assert r.headers["Content-Type"] == "application/octet-stream"
        async with http.head(path) as r:
            assert r.status == 200 and int(r.headers["Content-Length"]) == len(LAYER) and await r.read() == b""
        async with http.get(path, headers={"Range": "bytes=100-1123"}) as r:
            assert r.status == 206 and await r.read() == LAYER[100:1124]
            assert r.headers["Content-Range"] == f"bytes 100-1123/{len(LAYER)}"
        async with http.get(path, headers={"Range": f"bytes={len(LAYER)}-"}) as r:
            assert r.status == 416


@pytest.mark.parametrize(("path", "code"), [
    ("/v2/nope/manifests/3.10?ns=registry.k8s.io", "NAME_UNKNOWN"),
    ("/v2/registry.k8s.io/nope/manifests/3.10", "NAME_UNKNOWN"),
    ("/v2/pause/manifests/3.10?ns=ghcr.io", "NAME_UNKNOWN"),  # same name, other registry
    ("/v2/pause/manifests/3.10", "NAME_UNKNOWN"),  # no ns: that is docker.io/library/pause
    ("/v2/pause/manifests/9.99?ns=registry.k8s.io", "MANIFEST_UNKNOWN"),
    ("/v2/pause/manifests/sha256:" + "0" * 64 + "?ns=registry.k8s.io", "MANIFEST_UNKNOWN"),
    ("/v2/pause/blobs/sha256:" + "0" * 64 + "?ns=registry.k8s.io", "BLOB_UNKNOWN"),
    ("/v2/pause/blobs/sha256:../../index.json?ns=registry.k8s.io", "BLOB_UNKNOWN"),
    ("/v2/pause/blobs/sha256:" + "AB" * 32 + "?ns=registry.k8s.io", "BLOB_UNKNOWN"),
    ("/v2/pause/something/3.10?ns=registry.k8s.io", "NAME_UNKNOWN"),
])
async def test_unknown_things_get_the_spec_error_body(layout, path, code):
    async with registry(layout["root"]) as http, http.get(path) as r:
        assert r.status == 404 and await error_code(r) == code
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.mark.parametrize("raw", [
    "/v2/pause/blobs/%2e%2e%2f%2e%2e%2findex.json?ns=registry.k8s.io",
    "/v2/pause/blobs/sha256%3a..%2f..%2findex.json?ns=registry.k8s.io",
    "/v2/registry.k8s.io/pause/blobs/..%2f..%2f..%2foci-layout",
    "/v2/%2e%2e/%2e%2e/index.json/blobs/x",
    "/v2/pause/manifests/..%2f..%2findex.json?ns=registry.k8s.io",
])
async def test_encoded_traversal_never_reaches_a_file(layout, raw):
    app = web.Application()
    add_routes(app, layout["root"], recheck=0)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(URL(f"http://127.0.0.1:{server.port}{raw}", encoded=True)) as r:
                body = await r.read()
                assert r.status == 404 and b"errors" in body
                assert b"imageLayoutVersion" not in body and b"schemaVersion" not in body
    finally:
        await server.close()


async def test_a_blob_of_another_repository_is_not_served(layout):
    cilium_child = json.loads(blob_bytes(layout["root"], layout["cilium"]["digest"]))["manifests"][0]["digest"]
    cilium_layer = json.loads(blob_bytes(layout["root"], cilium_child))["layers"][0]["digest"]
    async with registry(layout["root"]) as http:
        async with http.get(f"/v2/pause/blobs/{cilium_layer}?ns=registry.k8s.io") as r:
            assert r.status == 404 and await error_code(r) == "BLOB_UNKNOWN"
        async with http.get(f"/v2/cilium/cilium/blobs/{cilium_layer}?ns=quay.io") as r:
            assert r.status == 200


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/v2/", "/v2/pause/manifests/3.10?ns=registry.k8s.io",
                                  "/v2/registry.k8s.io/pause/blobs/uploads/", "/v2/pause/blobs/sha256:" + "0" * 64])
async def test_write_methods_are_refused(layout, method, path):
    async with registry(layout["root"]) as http, http.request(method, path, data=b"x") as r:
        assert r.status == 405 and await error_code(r) == "UNSUPPORTED"
        assert r.headers["Allow"] == "GET, HEAD"


async def test_tags_list(layout):
    async with registry(layout["root"]) as http, http.get("/v2/registry.k8s.io/pause/tags/list") as r:
        assert await r.json() == {"name": "registry.k8s.io/pause", "tags": ["3.10"]}


async def test_every_get_that_sends_content_calls_on_pull(layout):
    pulls = []
    async with registry(layout["root"], on_pull=lambda *args: pulls.append(args)) as http:
        for method, path, headers in [
                ("HEAD", "/v2/pause/manifests/3.10?ns=registry.k8s.io", {}),
                ("GET", "/v2/pause/manifests/3.10?ns=registry.k8s.io", {}),
                ("GET", f"/v2/pause/blobs/{layout['layer']}?ns=registry.k8s.io", {"Range": "bytes=0-9"}),
                ("GET", "/v2/pause/manifests/9.99?ns=registry.k8s.io", {})]:
            async with http.request(method, path, headers=headers) as r:
                await r.read()
    manifest_size = layout["pause"]["size"]
    assert pulls == [("127.0.0.1", "registry.k8s.io/pause:3.10", layout["pause"]["digest"], manifest_size),
                     ("127.0.0.1", f"registry.k8s.io/pause@{layout['layer']}", layout["layer"], 10)]


async def test_a_failing_hook_does_not_fail_the_pull(layout):
    def broken(*_):
        raise RuntimeError("event log is gone")
    async with registry(layout["root"], on_pull=broken) as http:
        async with http.get(f"/v2/pause/blobs/{layout['config']}?ns=registry.k8s.io") as r:
            assert r.status == 200 and await r.read() == blob_bytes(layout["root"], layout["config"])


async def test_a_new_image_appears_without_restart(layout):
    root = layout["root"]
    async with registry(root) as http:
        async with http.head("/v2/kube-vip/kube-vip/manifests/v0.8.0?ns=ghcr.io") as r:
            assert r.status == 404
        write_index(root, {"registry.k8s.io/pause:3.10": layout["pause"],
                           "ghcr.io/kube-vip/kube-vip:v0.8.0": image(root, [b"kube-vip"])})
        async with http.head("/v2/kube-vip/kube-vip/manifests/v0.8.0?ns=ghcr.io") as r:
            assert r.status == 200


async def test_serve_app_answers_v2_only_with_images(layout, tmp_path):
    data_dir = tmp_path / "matchbox"
    data_dir.mkdir()
    async with running(data_dir, tmp_path) as (http, _), http.get("/v2/") as r:
        assert r.status == 404 and "Docker-Distribution-API-Version" not in r.headers
    async with running(data_dir, tmp_path, images=layout["root"]) as (http, ctx):
        async with http.get("/v2/") as r:
            assert r.status == 200 and r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
        async with http.get("/v2/pause/manifests/3.10?ns=registry.k8s.io") as r:
            assert r.status == 200 and r.headers["Docker-Content-Digest"] == layout["pause"]["digest"]
        async with http.get("/v2/nope/manifests/1?ns=registry.k8s.io") as r:  # not the Matchbox 404
            assert r.status == 404 and await error_code(r) == "NAME_UNKNOWN"
        assert ctx.metrics.requests[("/v2/{tail}", 200)] == 1
