"""/assets/ edge cases that must not corrupt a download or leak the tree: If-Range across versions,
If-Unmodified-Since, an empty suffix range, listings with symlinks out of the root, a client that
goes away mid-download."""

from __future__ import annotations

import asyncio
import os
from email.utils import formatdate

import pytest

from tests.support.serve import running

BIG = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "assets"
    (root / "flatcar").mkdir(parents=True)
    (root / "flatcar" / "flatcar_production_pxe.vmlinuz").write_bytes(BIG)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("outside")
    os.symlink(tmp_path / "secret", root / "flatcar" / "escape")
    os.symlink(tmp_path / "secret" / "key", root / "flatcar" / "escape-file")
    (tmp_path / "matchbox").mkdir()
    return tmp_path


async def test_if_range_resumes_only_the_same_version(tree):
    path = "/assets/flatcar/flatcar_production_pxe.vmlinuz"
    async with running(tree / "matchbox", tree, assets=tree / "assets") as (http, _):
        async with http.get(path) as r:
            etag, modified = r.headers["ETag"], r.headers["Last-Modified"]
        async with http.get(path, headers={"Range": "bytes=10-19", "If-Range": etag}) as r:
            assert r.status == 206 and await r.read() == BIG[10:20]
        async with http.get(path, headers={"Range": "bytes=10-19", "If-Range": modified}) as r:
            assert r.status == 206
        for stale in ('"0-0"', formatdate(0, usegmt=True)):
            async with http.get(path, headers={"Range": "bytes=10-19", "If-Range": stale}) as r:
                assert r.status == 200 and await r.read() == BIG  # another version: the whole file


async def test_if_unmodified_since_and_empty_suffix(tree):
    path = "/assets/flatcar/flatcar_production_pxe.vmlinuz"
    async with running(tree / "matchbox", tree, assets=tree / "assets") as (http, _):
        async with http.get(path, headers={"If-Unmodified-Since": formatdate(0, usegmt=True)}) as r:
            assert r.status == 412
        async with http.get(path, headers={"Range": "bytes=-0"}) as r:
            assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(BIG)}"


async def test_listings_do_not_name_what_leaves_the_root(tree):
    async with running(tree / "matchbox", tree, assets=tree / "assets") as (http, _):
        async with http.get("/assets/flatcar/") as r:
            listing = await r.text()
    assert "flatcar_production_pxe.vmlinuz" in listing
    assert "escape" not in listing


async def test_a_client_that_goes_away_is_an_event_not_an_error(tree):
    async with running(tree / "matchbox", tree, assets=tree / "assets") as (http, ctx):
        host, port = http._base_url.host, http._base_url.port
        big = tree / "assets" / "flatcar" / "flatcar_production_pxe.vmlinuz"
        big.write_bytes(BIG * 64)  # 64 MiB: more than the socket buffers hold
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /assets/flatcar/flatcar_production_pxe.vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await reader.read(65536)
        writer.transport.abort()  # RST mid-download
        for _ in range(200):
            if any(e.detail.get("aborted") for s in [ctx.events] for e in _events(tree)):
                break
            await asyncio.sleep(0.02)
        async with http.get("/metrics") as r:
            metrics = await r.text()
    assert any(e.detail.get("aborted") for e in _events(tree))
    assert 'status="500"' not in metrics


def _events(tree):
    from app.events import read_events
    return list(read_events(tree / "events.jsonl"))
