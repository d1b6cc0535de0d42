"""The HTTP application: every route in one table, Matchbox's error handling, status and metrics.

Boot routes are in `boot/`, the registry in `registry/`; this module wires them together.
"""

from __future__ import annotations

import logging

from aiohttp import web

from app.events import Event
from app.serve.boot import handlers as boot
from app.serve.context import CTX, Context, not_found, text
from app.serve.guard.metrics import Metrics
from app.serve.registry import handlers as registry
from app.status import page as status_page
from app.status import view as status_view

log = logging.getLogger("bootstrap_node.http")


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
    except ConnectionError:  # the client went away mid-answer: nothing to send, nothing to log
        ctx.metrics.request(name, 499)
        raise
    except Exception:  # noqa: BLE001 - a bug must cost one request a 500, not the server
        log.exception("internal error on %s", request.path)
        response = text("internal server error\n", 500)
    ctx.metrics.request(name, response.status)
    return response


async def root(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if ctx.config.strict_matchbox:
        return text("matchbox\n")
    view = status_view.build(ctx.events, ctx.config.assets, ctx.clock())
    return web.Response(text=status_page.html(view), content_type="text/html", charset="utf-8")


async def status_json(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    return web.json_response(status_view.build(ctx.events, ctx.config.assets, ctx.clock()).as_json())


async def metrics(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    counted = ctx.metrics
    if ctx.peer_metrics is not None:
        counted = Metrics.total([ctx.metrics.counters(), *ctx.peer_metrics()])
    return web.Response(text=counted.render(ctx.events.snapshot(), ctx.events.write_failures),
                        content_type="text/plain", charset="utf-8", headers={"X-Format": "0.0.4"})


def make_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[matchbox_errors], client_max_size=ctx.config.max_callback_bytes)
    app[CTX] = ctx
    routes = [("/", root), ("/boot.ipxe", boot.boot_ipxe), ("/boot.ipxe.0", boot.boot_ipxe), ("/ipxe", boot.ipxe),
              ("/grub", boot.grub), ("/ignition", boot.ignition), ("/generic", boot.generic),
              ("/metadata", boot.metadata), ("/assets", boot.assets_redirect), ("/assets/{tail:.*}", boot.assets),
              ("/events", boot.post_event), ("/status", status_json), ("/metrics", metrics)]
    for path, handler in routes:
        app.router.add_route("*", path, handler)  # Matchbox accepts every method
    registry.add_routes(app, ctx.config.images, on_pull=lambda *pull: _image_pulled(ctx, *pull))
    return app


def _image_pulled(ctx: Context, address: str, ref: str, digest: str, sent: int) -> None:
    """Every blob counts toward bytes sent; an image asked for by tag (once per pull) is an event,
    attributed to the node whose MAC the neighbour table holds for the puller."""
    ctx.metrics.bytes_sent += sent
    if "@" in ref:
        return
    mac = ctx.neighbour(address, None) if address else None
    ctx.events.record(Event("image-pull", mac=mac if mac in ctx.events.known else "", source="http",
                            message=ref, detail={"digest": digest, "ip": address}))
