"""What we add to Matchbox, over a real socket: assets confinement, events and their replay,
unknown machines, the reinstall-loop guard, callbacks, status and metrics."""

from __future__ import annotations

import json
import os
from email.utils import formatdate

import pytest

from app.events import Event, EventLog
from tests.support.serve import bearer, credential_in, pxe_and_install_config, running, write_json

MAC_A, MAC_B, MAC_X = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:99"


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "matchbox"
    for name, mac in [("node-a", MAC_A), ("node-b", MAC_B)]:
        write_json(d / f"profiles/{name}-install.json", {"id": f"{name}-install", "ignition_id": f"{name}.ign",
                                                         "boot": {"kernel": "/assets/k.vmlinuz", "initrd": ["/assets/i"]}})
        write_json(d / f"groups/{name}-install.json", {"id": f"{name}-install", "profile": f"{name}-install",
                                                       "selector": {"mac": mac}, "metadata": {"name": name}})
        write_json(d / f"ignition/{name}.ign", {"ignition": {"version": "3.4.0"}, "storage": {"files": [
            {"path": "/etc/hostname", "contents": {"source": f"data:,{name}"}}]}})
    return d


@pytest.fixture
def assets(tmp_path):
    root = tmp_path / "assets"
    (root / "flatcar" / "1.2.3").mkdir(parents=True)
    (root / "flatcar" / "1.2.3" / "flatcar_production_pxe.vmlinuz").write_bytes(bytes(range(256)) * 40)
    (root / "flatcar" / "1.2.3" / "flatcar_production_pxe_image.cpio.gz").write_bytes(b"\x1f\x8b" + b"z" * 100)
    (tmp_path / "secret.txt").write_text("outside the root")
    os.symlink(tmp_path / "secret.txt", root / "escape")
    os.symlink("flatcar", root / "inside-link")
    return root


@pytest.mark.parametrize("path", [
    "/assets/../secret.txt", "/assets/%2e%2e/secret.txt", "/assets/%2E%2E%2Fsecret.txt",
    "/assets/flatcar/..%2f..%2fsecret.txt", "/assets//etc/passwd", "/assets/escape",
    "/assets/flatcar/%00", "/assets/..\\secret.txt",
])
async def test_assets_never_escape_the_root(data_dir, assets, tmp_path, path):
    async with running(data_dir, tmp_path, assets=assets) as (http, _):
        async with http.get(path) as r:
            body = await r.read()
            assert r.status == 404, path
            assert b"outside the root" not in body and b"root:" not in body


async def test_symlink_inside_the_root_is_followed(data_dir, assets, tmp_path):
    async with running(data_dir, tmp_path, assets=assets) as (http, _):
        async with http.get("/assets/inside-link/1.2.3/flatcar_production_pxe.vmlinuz") as r:
            assert r.status == 200 and len(await r.read()) == 10240


async def test_assets_range_head_and_conditional(data_dir, assets, tmp_path):
    kernel = "/assets/flatcar/1.2.3/flatcar_production_pxe.vmlinuz"
    async with running(data_dir, tmp_path, assets=assets) as (http, _):
        async with http.get(kernel, headers={"Range": "bytes=256-511"}) as r:
            assert r.status == 206 and await r.read() == bytes(range(256))
            assert r.headers["Content-Range"] == "bytes 256-511/10240"
        async with http.get(kernel, headers={"Range": "bytes=99999-"}) as r:
            assert r.status == 416 and r.headers["Content-Range"] == "bytes */10240"
        async with http.get(kernel, headers={"Range": "bytes=-16"}) as r:  # the last 16 bytes
            assert r.status == 206 and await r.read() == bytes(range(240, 256))
        async with http.get(kernel, headers={"Range": "bytes=10000-"}) as r:
            assert r.status == 206 and len(await r.read()) == 240
        async with http.get(kernel, headers={"Range": "pages=1-2"}) as r:  # not understood: ignored
            assert r.status == 200 and len(await r.read()) == 10240
        async with http.head(kernel) as r:
            assert r.status == 200 and r.headers["Content-Length"] == "10240" and await r.read() == b""
            last_modified = r.headers["Last-Modified"]
        async with http.get(kernel, headers={"If-Modified-Since": last_modified}) as r:
            assert r.status == 304
        async with http.get(kernel, headers={"If-Modified-Since": formatdate(0, usegmt=True)}) as r:
            assert r.status == 200
        async with http.get("/assets/flatcar/1.2.3/flatcar_production_pxe_image.cpio.gz") as r:
            assert r.headers["Content-Type"] == "application/gzip" and "Content-Encoding" not in r.headers


async def test_assets_directories(data_dir, assets, tmp_path):
    async with running(data_dir, tmp_path, assets=assets) as (http, _):
        async with http.get("/assets", allow_redirects=False) as r:
            assert r.status == 301 and r.headers["Location"] == "/assets/"
        async with http.get("/assets/flatcar", allow_redirects=False) as r:
            assert r.status == 301 and r.headers["Location"] == "/assets/flatcar/"
        async with http.get("/assets/flatcar/1.2.3/") as r:
            assert r.status == 200 and "flatcar_production_pxe.vmlinuz" in await r.text()


async def test_ignition_only_for_the_nodes_own_labels(data_dir, tmp_path):
    async with running(data_dir, tmp_path) as (http, _):
        body, _ = await pxe_and_install_config(http, MAC_A)
        assert b"data:,node-a" in body
        body, _ = await pxe_and_install_config(http, MAC_B)
        assert b"data:,node-b" in body and b"node-a" not in body
        for query in ["", "?mac=", f"?uuid={MAC_A}", f"?mac={MAC_X}"]:
            async with http.get(f"/ignition{query}") as r:
                assert r.status == 404, query


async def test_unknown_machine_gets_an_explanation_and_is_discovered(data_dir, tmp_path):
    async with running(data_dir, tmp_path) as (http, ctx):
        async with http.get(f"/ipxe?mac={MAC_X.replace(':', '-')}") as r:
            text = await r.text()
            assert r.status == 200 and f"no node in cluster.yaml has MAC {MAC_X}" in text
            assert "sleep 5" in text and "chain" in text
        assert MAC_X in ctx.events.discovered
    async with running(data_dir, tmp_path / "strict", strict=True) as (http, _):
        async with http.get(f"/ipxe?mac={MAC_X}") as r:
            assert r.status == 404


async def test_reinstall_guard_and_resume_from_the_log(data_dir, tmp_path):
    async with running(data_dir, tmp_path) as (http, _):
        _, credential = await pxe_and_install_config(http, MAC_A)
        async with http.post("/events", json={"mac": MAC_A, "phase": "installed", "message": "done"},
                             headers=bearer(credential)) as r:
            assert r.status == 200
        async with http.get(f"/ipxe?mac={MAC_A}") as r:
            assert (await r.text()).splitlines()[-1] == "exit"
    # A restarted server replays events.jsonl: node-a is still installed and still guarded.
    async with running(data_dir, tmp_path) as (http, ctx):
        assert ctx.events.nodes[MAC_A].phase == "installed"
        async with http.get(f"/ipxe?mac={MAC_A}") as r:
            assert "node-a is installed" in await r.text()
        async with http.get(f"/ipxe?mac={MAC_B}") as r:
            assert "kernel /assets/k.vmlinuz" in await r.text()
    log = EventLog(tmp_path)
    log.open()
    log.record(Event("reinstall", mac=MAC_A, source="cli"))
    log.close()
    async with running(data_dir, tmp_path) as (http, _):
        async with http.get(f"/ipxe?mac={MAC_A}") as r:
            assert "kernel /assets/k.vmlinuz" in await r.text()


async def test_events_are_json_lines_with_node_progress(data_dir, assets, tmp_path):
    (assets / "k.vmlinuz").write_bytes(b"k" * 1000)
    async with running(data_dir, tmp_path, assets=assets) as (http, ctx):
        async with http.get(f"/ipxe?mac={MAC_A}"):
            pass
        async with http.get("/assets/k.vmlinuz") as r:
            await r.read()
        async with http.get(f"/ignition?mac={MAC_A}") as r:
            credential = credential_in(await r.read())
        async with http.post("/events", json={"mac": MAC_A, "phase": "failed", "message": "disk not found"},
                             headers=bearer(credential)):
            pass
        state = ctx.events.nodes[MAC_A]
        assert [p for _, p in state.history] == ["ipxe", "kernel", "install-ignition"]
        assert state.error == "disk not found"
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    kinds = [(e["kind"], e.get("node")) for e in lines if e.get("mac") == MAC_A]
    assert kinds == [("ipxe", "node-a"), ("boot-asset", "node-a"), ("install-ignition", "node-a"), ("failed", "node-a")]
    download = next(e for e in lines if e.get("detail", {}).get("file") == "/assets/k.vmlinuz")
    assert download["detail"]["bytes"] == 1000


@pytest.mark.parametrize("body,status", [
    (b"not json", 400), (b"[1]", 400), (json.dumps({"mac": "zz", "phase": "installed"}).encode(), 400),
    (json.dumps({"mac": MAC_A, "phase": "pwned"}).encode(), 400),
    (json.dumps({"mac": MAC_X, "phase": "installed"}).encode(), 404),
    (json.dumps({"mac": MAC_A, "phase": "installed", "message": "x" * 40000}).encode(), 413),
])
async def test_bad_callbacks_are_refused(data_dir, tmp_path, body, status):
    async with running(data_dir, tmp_path) as (http, ctx):
        async with http.post("/events", data=body, headers={"Content-Type": "application/json"}) as r:
            assert r.status == status
        assert MAC_A not in ctx.events.nodes


async def test_status_page_json_and_metrics(data_dir, tmp_path):
    async with running(data_dir, tmp_path) as (http, _):
        _, credential = await pxe_and_install_config(http, MAC_B)
        async with http.post("/events", json={"mac": MAC_B, "phase": "installing"}, headers=bearer(credential)):
            pass
        async with http.get("/") as r:
            page = await r.text()
            assert '<meta http-equiv="refresh"' in page and '<div class="name">node-b</div>' in page
            assert '<span class="phase ">installing</span>' in page
        async with http.get("/status") as r:
            nodes = {n["name"]: n for n in (await r.json())["nodes"]}
            assert nodes["node-b"]["phase"] == "installing" and nodes["node-a"]["phase"] == "pending"
        async with http.get("/nope"):
            pass
        async with http.get("/metrics") as r:
            metrics = await r.text()
    assert 'bootstrap_node_nodes{phase="installing"} 1' in metrics
    assert 'bootstrap_node_http_requests_total{route="/events",status="200"} 1' in metrics
    assert 'bootstrap_node_http_requests_total{route="unmatched",status="404"} 1' in metrics
