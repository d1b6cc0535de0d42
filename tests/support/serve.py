"""A real aiohttp server on a loopback socket around a data dir, for integration tests."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from app.events import EventLog
from app.layout import CREDENTIAL_PATH
from app.serve.app import build_app
from app.serve.boot.services import Services
from app.serve.boot.store import MatchboxStore
from app.serve.guard.limits import cap_connections
from app.serve.settings import AppSettings, Bind, BootSettings


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@asynccontextmanager
async def running(data_dir: Path, output: Path, assets: Path | None = None, strict: bool = False, recheck=0.0,
                  own_tree: bool = True, neighbours: dict[str, str] | None = None,
                  window: float = BootSettings.window_seconds,
                  images: Path | None = None, bind: str | None = None, event_log=EventLog,
                  shutdown_timeout: float = 60.0, only_known: bool = True):
    """`own_tree`: the appliance's own tree (install windows, credentials); False: a foreign Matchbox
    data dir. `neighbours`: address -> MAC, standing in for the kernel's neighbour table (loopback has
    none); with it, machines are bound by MAC as on a real L2, without it by address. `event_log`:
    SharedEventLog for one of several workers. `shutdown_timeout`: how long closing waits for
    handlers still running before cancelling them (serve's --shutdown-timeout). `only_known`: node states
    only for the tree's nodes, as serve keeps them; False shows every MAC in the log, as a reader
    without cluster.yaml does."""
    store = MatchboxStore(data_dir, recheck=recheck)
    table = neighbours if neighbours is not None else {}  # the same dict: tests change it as they go
    events = event_log(output, store.known_nodes, only_known=only_known)
    events.open()
    boot = BootSettings(own_tree=own_tree, strict_matchbox=strict, window_seconds=window, retry_seconds=5,
                        bind=Bind(bind) if bind else Bind.link if neighbours is not None else Bind.address)
    ctx = Services(store, events, neighbour=lambda address, ours=None: table.get(address))
    server = TestServer(build_app(AppSettings(data_dir, assets, images, boot), ctx), host="127.0.0.1")
    await server.start_server(shutdown_timeout=shutdown_timeout)
    # As serve does: each accepted connection's sender is looked up once (kernel/claims.py); no caps here.
    cap_connections(server.runner.server, 1 << 30, lambda: None, per_address=1 << 30,
                    **({"on_accepted": ctx.accepted} if own_tree else {}))
    try:
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{server.port}",
                                         auto_decompress=False) as session:
            yield session, ctx
    finally:
        await server.close()
        events.close()


def credential_in(config: bytes) -> str:
    """The install credential a served config carries (what the node's scripts read)."""
    for entry in json.loads(config).get("storage", {}).get("files", []):
        if entry["path"] == CREDENTIAL_PATH:
            return entry["contents"]["source"].split(",", 1)[1]
    raise AssertionError("the config carries no credential")


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def pxe_and_install_config(http, mac: str) -> tuple[bytes, str]:
    """What a node does first: PXE (opens its window), then fetch its install config."""
    async with http.get(f"/ipxe?mac={mac}") as r:
        assert r.status == 200, await r.text()
    async with http.get(f"/ignition?mac={mac}") as r:
        body = await r.read()
        assert r.status == 200, body
    return body, credential_in(body)


@asynccontextmanager
async def client_from(http: aiohttp.ClientSession, address: str):
    """A session like `http` whose connections come from `address` (another loopback machine)."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(base_url=http._base_url, connector=connector) as session:
        yield session
