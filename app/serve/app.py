"""The HTTP application and its one factory, `build_app`: every route in one table, Matchbox's error
handling, and the status and metrics routes.

Boot routes are in `boot/`, the registry in `registry/`; this module wires them to the settings and
services. The runner, the tests, the lab's status page and the benchmarks all build the app here.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from app.events import EventLog
from app.serve.boot.handlers import BootHandlers, response
from app.serve.boot.labels import LabelError
from app.serve.boot.service import BootService, Reply, not_found
from app.serve.boot.services import Services
from app.serve.guard.metrics import Metrics
from app.serve.registry import handlers as registry
from app.serve.settings import AppSettings
from app.status import page as status_page
from app.status import view as status_view
from app.status.view import StatusView

log = logging.getLogger("bootstrap_node.http")
BOOT = web.AppKey("boot", BootService)


def errors(metrics: Metrics):
    """Matchbox's plain 404 for every miss; never a traceback; metrics for everything."""

    @web.middleware
    async def matchbox_errors(request: web.Request, handler):
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            answer = await handler(request)
        except web.HTTPNotFound:
            answer = response(not_found())
        except LabelError as exc:
            answer = response(Reply(400, f"bad request: {exc}\n"))
        except web.HTTPException as exc:  # redirects and the like: aiohttp wants them raised
            metrics.request(name, exc.status)
            raise
        except ConnectionError:  # the client went away mid-answer: nothing to send, nothing to log
            metrics.request(name, 499)
            raise
        except Exception:  # noqa: BLE001 - a bug must cost one request a 500, not the server
            log.exception("internal error on %s", request.path)
            answer = response(Reply(500, "internal server error\n"))
        metrics.request(name, answer.status)
        return answer

    return matchbox_errors


class StatusHandlers:
    """/, /status and /metrics: what the event log and the counters say, for people and Prometheus."""

    def __init__(self, services: Services, assets: Path | None, strict_matchbox: bool):
        self.services = services  # read per request: tests swap the clock
        self.events: EventLog = services.events
        self.metrics = services.metrics
        self.assets, self.strict_matchbox = assets, strict_matchbox
        self._builds = asyncio.Lock()

    async def root(self, request: web.Request) -> web.Response:
        if self.strict_matchbox:
            return response(Reply(200, "matchbox\n"))
        page = await self._off_the_loop(status_page.html)
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    async def status(self, request: web.Request) -> web.Response:
        body = await self._off_the_loop(lambda view: json.dumps(view.as_json()))
        return web.Response(text=body, content_type="application/json", charset="utf-8")

    async def _off_the_loop(self, render: Callable[[StatusView], str]) -> str:
        """Build and render the status view in a thread, one build at a time: a crowd of /status
        requests waits its turn without holding up the boot answers on the loop. The event log's
        states are held still only while the view is built (they are bounded: the known nodes and at
        most MAX_DISCOVERED strangers), not while it is rendered."""
        def build() -> str:
            with self.events.reading():
                view = status_view.build(self.events, self.assets, self.services.clock())
            return render(view)
        async with self._builds:
            return await asyncio.to_thread(build)

    async def prometheus(self, request: web.Request) -> web.Response:
        counted = self.metrics
        if self.services.peer_metrics is not None:
            counted = Metrics.total([self.metrics.counters(), *self.services.peer_metrics()])
        return web.Response(text=counted.render(self.events.snapshot(), self.events.write_failures),
                            content_type="text/plain", charset="utf-8", headers={"X-Format": "0.0.4"})


def build_app(settings: AppSettings, services: Services) -> web.Application:
    """The whole HTTP application `serve` runs: Matchbox's API, /assets, callbacks, status, metrics
    and, when `settings.images` names a layout, the registry at /v2/."""
    app = web.Application(middlewares=[errors(services.metrics)],
                          client_max_size=settings.limits.max_callback_bytes)
    boot = BootService(settings.boot, services)
    app[BOOT] = boot
    status = StatusHandlers(services, settings.assets, settings.boot.strict_matchbox)
    handlers = BootHandlers(boot, settings.assets, settings.limits.max_callback_bytes, settings.limits.idle_seconds,
                            settings.loaders)
    routes = [("/", status.root), *handlers.routes(),
              ("/status", status.status), ("/metrics", status.prometheus)]
    for path, handler in routes:
        app.router.add_route("*", path, handler)  # Matchbox accepts every method
    registry.add_routes(app, settings.images, on_pull=boot.image_pulled)
    return app
