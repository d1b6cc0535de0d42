"""A real aiohttp server on a loopback socket around a data dir, for integration tests."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from app.events import EventLog
from app.serve.http import Context, ServeConfig, make_app
from app.serve.matchbox import Store, known_macs


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@asynccontextmanager
async def running(data_dir: Path, output: Path, assets: Path | None = None, strict: bool = False, recheck=0.0,
                  images: Path | None = None):
    store = Store(data_dir, recheck=recheck)
    events = EventLog(output, known_macs(store.groups()))
    events.open()
    ctx = Context(ServeConfig(data_dir=data_dir, assets=assets, strict_matchbox=strict, retry_seconds=5,
                              images=images),
                  store, events)
    server = TestServer(make_app(ctx), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}",
                                         auto_decompress=False) as session:
            yield session, ctx
    finally:
        await server.close()
        events.close()
