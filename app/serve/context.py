"""What every HTTP handler shares: the serve settings, the services (store, event log, metrics,
neighbour lookup, clock) and the plain-text answers Matchbox gives."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from app.events import Event, EventLog
from app.serve.boot import policy
from app.serve.boot.store import Store
from app.serve.guard.metrics import Metrics
from app.serve.guard.throttle import Throttle
from app.serve.kernel.neighbours import link_mac

NOT_FOUND = "404 page not found\n"
CREDENTIAL_BYTES = 32
ALERT_PERIOD = 60.0  # at most one logged alert per reason, sender and node per minute; all are counted


@dataclass
class ServeConfig:
    data_dir: Path
    assets: Path | None
    strict_matchbox: bool = False
    retry_seconds: int = 30
    max_callback_bytes: int = 16 * 1024
    own_tree: bool = True  # False: a foreign Matchbox data dir, served the way Matchbox does
    install_window: float = 3600.0  # seconds a PXE boot keeps a node's install window open
    images: Path | None = None  # an OCI image layout served at /v2/
    bind: str = "link"  # how a request is tied to a machine: see policy.Settings.bind

    @property
    def settings(self) -> policy.Settings:
        return policy.Settings(own_tree=self.own_tree, strict_matchbox=self.strict_matchbox,
                               window_seconds=self.install_window, retry_seconds=self.retry_seconds,
                               bind=self.bind)


@dataclass
class Context:
    config: ServeConfig
    store: Store
    events: EventLog
    metrics: Metrics = field(default_factory=Metrics)
    neighbour: Callable[[str, str | None], str | None] = link_mac  # (sender, our end) -> MAC
    new_credential: Callable[[], str] = lambda: secrets.token_urlsafe(CREDENTIAL_BYTES)
    clock: Callable[[], float] = time.time
    throttle: Throttle = field(default_factory=lambda: Throttle(ALERT_PERIOD))
    # With several workers: the other workers' published counters, added to ours on /metrics.
    peer_metrics: Callable[[], list[dict]] | None = None

    def record(self, events: list[Event]) -> None:
        """Record a decision's events; alerts are counted always, logged at most once a period."""
        now = time.monotonic()
        for event in events:
            if event.kind == "alert":
                self.metrics.alert(str(event.detail.get("reason", "")))
                key = (event.detail.get("reason"), event.detail.get("remote"), event.mac)
                if not self.throttle.allow(key, now):
                    continue
            self.events.record(event)


CTX = web.AppKey("ctx", Context)


def text(body: str, status: int = 200, content_type: str = "text/plain") -> web.Response:
    return web.Response(text=body, status=status, content_type=content_type, charset="utf-8")


def not_found() -> web.Response:
    return text(NOT_FOUND, 404)
