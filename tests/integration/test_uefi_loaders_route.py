"""/uefi/<build>: the iPXE EFI builds of tftp/ over HTTP for UEFI HTTP Boot, by name and nothing else."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from app.events import EventLog
from app.serve.app import build_app
from app.serve.boot.services import Services
from app.serve.boot.store import MatchboxStore
from app.serve.settings import AppSettings


async def test_only_the_known_builds_are_served(tmp_path):
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    (tftp / "snponly.efi").write_bytes(b"snp build" * 1000)
    (tftp / "undionly.kpxe").write_bytes(b"bios")
    (tmp_path / "secret").write_text("not for you")
    data = tmp_path / "matchbox"
    data.mkdir()
    events = EventLog(tmp_path, MatchboxStore(data).known_nodes)
    events.open()
    server = TestServer(build_app(AppSettings(data, loaders=tftp), Services(MatchboxStore(data), events)),
                        host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}") as http:
            async with http.get("/uefi/snponly.efi") as r:
                assert r.status == 200 and await r.read() == b"snp build" * 1000
                assert r.headers["Content-Type"] == "application/efi"
            for path in ("/uefi/ipxe.efi", "/uefi/undionly.kpxe", "/uefi/..%2Fsecret", "/uefi/"):
                async with http.get(path) as r:
                    assert r.status == 404, path
                    assert b"not for you" not in await r.read()
    finally:
        await server.close()
        events.close()
