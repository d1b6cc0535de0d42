"""What every HTTP handler shares: the serve settings, the services (store, event log, metrics,
neighbour lookup, clock) and the plain-text answers Matchbox gives."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from app.events import MAX_DISCOVERED, Event, EventLog
from app.events.model import changes_state
from app.serve.boot import policy
from app.serve.boot.store import Store, is_unicast
from app.serve.guard.metrics import Metrics
from app.serve.guard.throttle import Throttle
from app.serve.kernel.claims import LinkHistory
from app.serve.kernel.neighbours import link_mac

NOT_FOUND = "404 page not found\n"
CREDENTIAL_BYTES = 32
ALERT_PERIOD = 60.0  # at most one logged alert per reason, sender and node per minute; all are counted
DISCOVERY_FULL = f"more than {MAX_DISCOVERED} unknown machines PXE-booted; the rest are not listed"


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
    body_seconds: float = 15.0  # a request body must arrive whole within this (serve's --idle-timeout)

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
    links: LinkHistory = field(default_factory=lambda: LinkHistory(3600.0))

    def __post_init__(self) -> None:
        self.links.period = self.config.install_window  # a claim matters while a window can be open

    def link_of(self, address: str, ours: str | None) -> tuple[str | None, str | None]:
        """The sender's MAC in the neighbour table, and another MAC it had lately (a claim's mark)."""
        mac = self.neighbour(address, ours)
        return mac, self.links.see(address, mac, time.monotonic())

    def accepted(self, transport) -> None:
        """A new connection: note its sender's MAC now, before any claim made while it is open."""
        if not self.config.own_tree or transport is None:
            return
        peer, ours = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        if isinstance(peer, tuple) and peer:
            address = f"{peer[0]}%{peer[3]}" if len(peer) == 4 and peer[3] else str(peer[0])
            self.link_of(address, ours[0] if isinstance(ours, tuple) else None)

    def record(self, events: list[Event]) -> None:
        """Record a decision's events; alerts are counted always, logged at most once a period."""
        now = time.monotonic()
        for event in events:
            if event.kind == "alert":
                self.metrics.alert(str(event.detail.get("reason", "")))
                key = (event.detail.get("reason"), event.detail.get("remote"), event.mac)
                if not self.throttle.allow(key, now):
                    if event.mac and not event.node:
                        event.node = self.events.known.get(event.mac, "")
                    self.events.count_alert(event)  # the operator's view counts every one
                    continue
            self.events.record(event)

    def admit(self, event: Event) -> Event | None:
        """What to record of `event` about a machine: a known node's event as it is; for any other MAC a
        state-changing event (a PXE boot, a DHCP exchange) becomes a discovery, kept only through the
        capped, throttled discovery table. HTTP and DHCP paths alike: made-up MACs never make nodes."""
        if not event.mac or event.mac in self.events.known or not (changes_state(event.kind)
                                                                   or event.kind == "discovered"):
            return event
        ip = event.detail.get("ip", "")
        discovered = Event("discovered", mac=event.mac, source=event.source, detail={"ip": ip} if ip else {})
        return discovered if self._worth_discovering(event.mac) else None

    def _worth_discovering(self, mac: str) -> bool:
        """Real NICs only, each at most once a minute, and at most MAX_DISCOVERED of them (a flood
        of made-up MACs is counted, not kept)."""
        if not is_unicast(mac):
            return False
        if mac not in self.events.discovered and len(self.events.discovered) >= MAX_DISCOVERED:
            self.metrics.alert(DISCOVERY_FULL)
            return False
        return self.throttle.allow(("discovered", mac), time.monotonic())


CTX = web.AppKey("ctx", Context)


def text(body: str, status: int = 200, content_type: str = "text/plain") -> web.Response:
    return web.Response(text=body, status=status, content_type=content_type, charset="utf-8")


def not_found() -> web.Response:
    return text(NOT_FOUND, 404)
