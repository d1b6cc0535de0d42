"""The HTTP server: Matchbox's read-only API, /assets, node callbacks, status and metrics.

It only serves: configs come from the data dir `generate` wrote (or any Matchbox data dir),
files from the assets root, and every boot-relevant hit becomes an event.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from app.serve import registry, scripts, status_page
from app.serve.assets import serve_asset
from app.events import CALLBACK_PHASES, Event, EventLog
from app.serve.matchbox import Group, Store, normalize_mac, parse_labels
from app.serve.metrics import Metrics

log = logging.getLogger("bootstrap_node.http")
NOT_FOUND = "404 page not found\n"
BOOT_ASSETS = ("vmlinuz", "cpio.gz", ".efi", ".kpxe", "image.bin.bz2", ".raw")


@dataclass
class ServeConfig:
    data_dir: Path
    assets: Path | None
    strict_matchbox: bool = False
    retry_seconds: int = 30
    max_callback_bytes: int = 16 * 1024
    images: Path | None = None  # an OCI image layout served at /v2/


@dataclass
class Context:
    config: ServeConfig
    store: Store
    events: EventLog
    metrics: Metrics = field(default_factory=Metrics)
    client_macs: dict[str, str] = field(default_factory=dict)  # client IP -> MAC, learnt from /ipxe and DHCP


CTX = web.AppKey("ctx", Context)


def text(body: str, status: int = 200, content_type: str = "text/plain") -> web.Response:
    return web.Response(text=body, status=status, content_type=content_type, charset="utf-8")


def not_found() -> web.Response:
    return text(NOT_FOUND, 404)


@web.middleware
async def matchbox_errors(request: web.Request, handler):
    """Matchbox's plain 404 for every miss; never a traceback; metrics for everything."""
    ctx = request.app[CTX]
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        response = not_found()
    except web.HTTPException as exc:  # redirects and the like: aiohttp wants them raised
        ctx.metrics.request(name, exc.status)
        raise
    except Exception:  # noqa: BLE001 - a bug must cost one request a 500, not the server
        log.exception("internal error on %s", request.path_qs)
        response = text("internal server error\n", 500)
    ctx.metrics.request(name, response.status)
    return response


def _labels(request: web.Request) -> tuple[dict[str, str], str]:
    raw = request.rel_url.raw_query_string
    return parse_labels(raw), raw


def _mac(labels: dict[str, str]) -> str:
    return next((v for k, v in labels.items() if k.lower() == "mac"), "")


def _remember(request: web.Request, mac: str) -> None:
    if mac and request.remote:
        request.app[CTX].client_macs[request.remote] = mac


def _match(ctx: Context, labels: dict[str, str]) -> tuple[Group, dict] | None:
    group = ctx.store.select(labels)
    if group is None:
        return None
    profile = ctx.store.profile(group.profile)
    return (group, profile) if profile is not None else None


async def root(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if ctx.config.strict_matchbox:
        return text("matchbox\n")
    return web.Response(text=status_page.html(ctx.events.snapshot(), sorted(ctx.events.discovered)),
                        content_type="text/html", charset="utf-8")


async def boot_ipxe(request: web.Request) -> web.Response:
    return text(scripts.BOOT_IPXE)


async def ipxe(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    labels, _ = _labels(request)
    mac = _mac(labels)
    if mac and not ctx.config.strict_matchbox and ctx.events.is_installed(mac):
        state = ctx.events.nodes[mac]
        ctx.events.record(Event("local-boot", mac=mac, source="http", message="installed: answered exit"))
        return text(scripts.local_boot_script(state.name or mac))
    matched = _match(ctx, labels)
    if matched is None or not matched[1].get("boot"):
        if mac and not ctx.config.strict_matchbox and ctx.events.known.get(mac) is None:
            ctx.events.record(Event("discovered", mac=mac, source="http", detail={"ip": request.remote or ""}))
            return text(scripts.unknown_machine_script(mac, ctx.config.retry_seconds))
        return not_found()
    _remember(request, mac)  # so the kernel and initrd downloads that follow are attributed to it
    ctx.events.record(Event("ipxe", mac=mac, source="http",
                            detail={"profile": matched[1]["id"], "ip": request.remote or ""}))
    return text(scripts.ipxe_script(matched[1]["boot"]))


async def grub(request: web.Request) -> web.Response:
    matched = _match(request.app[CTX], _labels(request)[0])
    if matched is None or not matched[1].get("boot"):
        return not_found()
    return text(scripts.grub_script(matched[1]["boot"]))


async def ignition(request: web.Request) -> web.Response:
    return await _config(request, "ignition", "ignition_id")


async def generic(request: web.Request) -> web.Response:
    return await _config(request, "generic", "generic_id")


async def _config(request: web.Request, kind: str, id_key: str) -> web.Response:
    ctx = request.app[CTX]
    labels, raw = _labels(request)
    matched = _match(ctx, labels)
    if matched is None or not matched[1].get(id_key):
        return not_found()
    group, profile = matched
    name = profile[id_key]
    if kind == "ignition" and name.endswith((".ign", ".ignition")):
        # Raw configs do not depend on the request: render once per version of the file.
        body = ctx.store.served_ignition(name, lambda raw: scripts.ignition_bytes(name, raw, {}))
        if body is None:
            return not_found()
    else:
        found = ctx.store.text(kind, name)
        if found is None:
            return not_found()
        variables = scripts.template_variables(group.metadata, group.selector, labels, raw)
        try:
            if kind == "ignition":
                body = scripts.ignition_bytes(found[0], found[1], variables)
            else:
                body = scripts.go_template(found[1].decode(), variables).encode()
        except (scripts.RenderFailed, UnicodeDecodeError) as exc:
            log.warning("%s for %s: %s", kind, group.id, exc)
            return not_found()
    mac = _mac(labels)
    if kind == "ignition" and mac:
        phase = "install-ignition" if labels.get("os") != "installed" else "http"
        ctx.events.record(Event(phase, mac=mac, source="http",
                                detail={"route": "/ignition", "group": group.id, "bytes": len(body)}))
    if kind == "ignition":
        return web.Response(body=body, content_type="application/json")
    return text(body.decode())


async def metadata(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    labels, raw = _labels(request)
    group = ctx.store.select(labels)
    if group is None:
        return not_found()
    mac = _mac(labels)
    if mac:
        ctx.events.record(Event("http", mac=mac, source="http", detail={"route": "/metadata"}))
    variables = scripts.template_variables(group.metadata, group.selector, labels, raw)
    return web.Response(body=scripts.metadata_env(variables).encode(), headers={"Content-Type": "plain/text"})


async def assets_redirect(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(location="/assets/")


async def assets(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    started = time.monotonic()
    response = await serve_asset(request, ctx.config.assets)  # files are sent by the time it returns
    name = request.path.rsplit("/", 1)[-1]
    if request.method == "GET" and name.endswith(BOOT_ASSETS):
        mac = ctx.client_macs.get(request.remote or "", "")
        kind = "kernel" if mac else "http"
        ctx.events.record(Event(kind, mac=mac, source="http", detail={
            "route": "/assets/", "file": request.path, "bytes": response.content_length or 0,
            "range": request.headers.get("Range", ""), "seconds": round(time.monotonic() - started, 4)}))
        ctx.metrics.bytes_sent += response.content_length or 0
    return response


async def post_event(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if request.method != "POST":
        return text("POST a JSON object {mac, phase, message}\n", 405)
    if (request.content_length or 0) > ctx.config.max_callback_bytes:
        return text("event too large\n", 413)
    try:
        data = json.loads(await request.read())
    except ValueError:
        return text("body must be JSON\n", 400)
    if not isinstance(data, dict):
        return text("body must be a JSON object\n", 400)
    mac = normalize_mac(str(data.get("mac", "")))
    phase = data.get("phase")
    if mac is None:
        return text("mac: not a MAC address\n", 400)
    if phase not in CALLBACK_PHASES:
        return text(f"phase: must be one of {', '.join(sorted(CALLBACK_PHASES))}\n", 400)
    if mac not in ctx.events.known:
        return text(f"no node has MAC {mac}\n", 404)
    message = str(data.get("message", ""))[:2000]
    ctx.events.record(Event(phase, mac=mac, source="node", message=message))
    return text("ok\n")


async def status_json(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    body = {"nodes": [status_page.as_dict(s) for s in ctx.events.snapshot()],
            "discovered": sorted(ctx.events.discovered)}
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.Response(text=ctx.metrics.render(ctx.events.snapshot()),
                        content_type="text/plain", charset="utf-8", headers={"X-Format": "0.0.4"})


def make_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[matchbox_errors], client_max_size=ctx.config.max_callback_bytes)
    app[CTX] = ctx
    routes = [("/", root), ("/boot.ipxe", boot_ipxe), ("/boot.ipxe.0", boot_ipxe), ("/ipxe", ipxe),
              ("/grub", grub), ("/ignition", ignition), ("/generic", generic), ("/metadata", metadata),
              ("/assets", assets_redirect), ("/assets/{tail:.*}", assets), ("/events", post_event),
              ("/status", status_json), ("/metrics", metrics)]
    for path, handler in routes:
        app.router.add_route("*", path, handler)  # Matchbox accepts every method
    registry.add_routes(app, ctx.config.images)  # nothing when no image layout is configured
    return app
