"""The boot service: each boot route's whole transaction — decide (`policy.py`), render (`render.py`),
record — between the HTTP handlers and the policy.

Every event a boot route produces goes through `record`, the one path to the event log: alerts are
counted always and logged at most once per ALERT_PERIOD for the same reason, sender and node; an
unknown machine is kept at most once a period and only while fewer than MAX_DISCOVERED are; a
download no node can be tied to is logged at most once a period per sender and file. Deciding and
recording happen under the event log's transaction, so with several workers "once" still means once
(docs/architecture.md, "Several workers").
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.events import ALERT, MAX_DISCOVERED, Event, EventKind, NodeState
from app.serve.boot import policy, render
from app.serve.boot.labels import is_unicast
from app.serve.boot.services import Services
from app.serve.cluster.windows import WindowConflict, WindowNotSaved
from app.serve.guard.throttle import Throttle
from app.serve.settings import BootSettings

log = logging.getLogger("bootstrap_node.http")
ALERT_PERIOD = 60.0  # at most one logged alert per reason, sender and node per minute; all are counted
DISCOVERY_FULL = f"more than {MAX_DISCOVERED} unknown machines PXE-booted; the rest are not listed"
BOOT_ASSETS = ("vmlinuz", "cpio.gz", ".efi", ".kpxe", "image.bin.bz2", ".raw")
NOT_FOUND = "404 page not found\n"
# With several workers, a decision the event log could not record is not acted on (`events.log.SharedEventLog`).
UNSAVED = "the event log could not be written (is the disk full?); try again\n"
CALLBACK_REFUSED = "callback refused: missing or wrong credential\n"
# Cluster mode: the install window could not be written to the Machine, so nothing was handed out.
NOT_WRITTEN = "not answered: the install window could not be written to the cluster; try again\n"
RETRY = {"Retry-After": "1"}
WRITE_ATTEMPTS = 3  # a conflict is decided again from the fresh Machine, this often at most


@dataclass(frozen=True)
class Reply:
    """An answer, before it becomes an HTTP response."""

    status: int
    body: str | bytes
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)


def not_found() -> Reply:
    return Reply(404, NOT_FOUND)


def _text(decision: policy.Decision, body: str | None) -> Reply:
    return not_found() if body is None else Reply(decision.status, body)


@dataclass(frozen=True)
class Pending:
    """A decision with its answer ready, its events not yet recorded."""

    mac: str  # the node whose state its events change ("" when none)
    events: list[Event]
    reply: Reply
    serves: bool = False  # it hands something out or changes a node: never before its window is written
    check_saved: bool = False  # with several workers, answered only once its events reached the log
    refused_callback: bool = False  # counted on /metrics


@dataclass(frozen=True)
class Download:
    """A finished (or aborted) response under /assets/, as the handler saw it."""

    address: str
    path: str
    range: str
    sent: int
    seconds: float
    aborted: bool = False


class BootService:
    def __init__(self, settings: BootSettings, services: Services):
        self.settings = settings
        self.services = services
        self.store, self.events, self.metrics = services.store, services.events, services.metrics
        self.throttle = Throttle(ALERT_PERIOD)
        self._deciding = asyncio.Lock()
        services.links.period = settings.window_seconds  # a claim matters while a window can be open

    # -- the one record path -----------------------------------------------------------------------
    def record(self, events: list[Event]) -> None:
        now = time.monotonic()
        for event in events:
            if event.kind == ALERT:
                self.metrics.alert(str(event.detail.get("reason", "")))
                if not self.throttle.allow((event.detail.get("reason"), event.detail.get("remote"), event.mac), now):
                    self.events.count_alert(event)  # the operator's view counts every one
                    continue
            elif event.mac and event.mac not in self.events.known:
                # A machine that is no node (a DHCP or TFTP exchange, a default group's PXE boot or
                # metadata): a discovery at most, never a node, never a line per request. Made-up MACs
                # cost a counter, not state.
                ip = event.detail.get("ip", "")
                event = Event(EventKind.DISCOVERED, mac=event.mac, source=event.source, detail={"ip": ip} if ip else {})
            if event.kind == EventKind.DISCOVERED and not self._keep_discovery(event, now):
                continue
            self.events.record(event)

    def _keep_discovery(self, event: Event, now: float) -> bool:
        """Unknown machines are for `discover`: real NICs only, each at most once a period, and at
        most MAX_DISCOVERED of them (a flood of made-up MACs is counted, not kept)."""
        if not is_unicast(event.mac):
            return False
        if event.mac not in self.events.discovered and len(self.events.discovered) >= MAX_DISCOVERED:
            self.metrics.alert(DISCOVERY_FULL)
            return False
        return self.throttle.allow((EventKind.DISCOVERED.value, event.mac), now)

    # -- deciding, then recording (cluster mode: writing the window in between) -----------------------
    def state(self, mac: str) -> NodeState | None:
        """What the policy decides from: the event log's state, with the install its Machine holds
        in cluster mode (the Machine is where a takeover finds it)."""
        local = self.events.state(mac)
        windows = self.services.windows
        return local if windows is None else windows.state(mac, local)

    def _now(self, prepare: Callable[[], Pending]) -> Reply:
        """Decide and record as one step: two requests for the same node never both see it unused."""
        with self.events.transaction():
            return self._finish(prepare())

    def _finish(self, pending: Pending) -> Reply:
        self.record(pending.events)
        if pending.refused_callback:
            self.metrics.bad_callbacks += 1
        if pending.check_saved and not self.events.saved():
            return Reply(503, UNSAVED)
        return pending.reply

    async def answer(self, prepare: Callable[[], Pending]) -> Reply:
        """A boot route's answer. In cluster mode what the decision changes of the node's install is
        written to its Machine first (write-then-serve): a written window is what a takeover honours,
        and its resourceVersion precondition is what keeps "once" once between replicas. Nothing that
        hands something out goes out unwritten; a conflict is decided again from the fresh Machine."""
        windows = self.services.windows
        if windows is None:
            return self._now(prepare)
        async with self._deciding:  # one decision in flight: the next one sees this one's events
            for _ in range(WRITE_ATTEMPTS):
                with self.events.transaction():
                    pending = prepare()
                    before = self.state(pending.mac) if pending.mac else None
                try:
                    if pending.mac:
                        await windows.persist(pending.mac, before, pending.events)
                except WindowConflict:
                    continue
                except WindowNotSaved as exc:
                    if self.throttle.allow(("window-not-saved", pending.mac), time.monotonic()):
                        log.warning("install window of %s not written: %s", pending.mac, exc)
                    if pending.serves:
                        return Reply(503, NOT_WRITTEN, headers=RETRY)
                with self.events.transaction():
                    return self._finish(pending)
        return Reply(503, NOT_WRITTEN, headers=RETRY)

    # -- /ipxe, /grub ------------------------------------------------------------------------------
    def ipxe(self, req: policy.Request) -> Reply:
        return self._now(lambda: self.prepare_ipxe(req))

    def prepare_ipxe(self, req: policy.Request) -> Pending:
        mac = policy.mac_label(req.labels)
        # Its `ipxe` event also ties the address's downloads to the node.
        decision = policy.decide_ipxe(req, self.store, self.state(mac), self.events.known, self.settings)
        reply = _text(decision, render.script_text(decision, self.settings.retry_seconds))
        return Pending(mac, decision.events, reply, serves=decision.answer is policy.Answer.SCRIPT)

    def grub(self, req: policy.Request) -> Reply:
        decision = policy.decide_grub(req, self.store)
        return _text(decision, render.script_text(decision, self.settings.retry_seconds, render.grub_script))

    # -- /ignition, /generic, /metadata --------------------------------------------------------------
    def config(self, req: policy.Request, raw_query: str) -> Reply:
        return self._now(lambda: self.prepare_config(req, raw_query))

    def prepare_config(self, req: policy.Request, raw_query: str) -> Pending:
        decision = policy.decide_config(req, self.store, self.state, self.settings, self.services.new_credential)
        mac = next((e.mac for e in decision.events if e.mac), "")
        if not decision.is_config:
            refusal = _text(decision, render.script_text(decision, self.settings.retry_seconds))
            return Pending(mac, decision.events, refusal)
        try:
            body = self._render_config(req, decision, raw_query)
        except render.RenderFailed as exc:
            log.warning("%s for %s: %s", req.route, decision.group.id, exc)
            return Pending("", [], not_found())
        if body is None:
            return Pending("", [], not_found())
        served = [dataclasses.replace(e, detail={**e.detail, "bytes": len(body)}) for e in decision.events]
        asked = policy.mac_label(req.labels)
        if not served and req.route == "ignition" and asked:
            served.append(Event(EventKind.HTTP, mac=asked, source="http",
                                detail={"route": "/ignition", "group": decision.group.id}))
        reply = (Reply(200, body, content_type="application/json") if req.route == "ignition"
                 else Reply(200, body.decode(errors="replace")))
        return Pending(mac, served, reply, serves=True, check_saved=True)

    def _render_config(self, req: policy.Request, decision: policy.Decision, raw_query: str) -> bytes | None:
        name = decision.profile[f"{req.route}_id"]
        shape = not self.settings.own_tree  # a foreign data dir: answer as real Matchbox shapes Ignition
        if req.route == "ignition" and name.endswith((".ign", ".ignition")):
            # Raw configs do not depend on the request: render once per version of the file.
            body = self.store.served_ignition(
                name, lambda data: render.ignition_bytes(name, data, {}, matchbox_shape=shape))
        else:
            found = self.store.text(req.route, name)
            if found is None:
                return None
            variables = render.template_variables(decision.group.metadata, decision.group.selector, req.labels,
                                                  raw_query)
            try:
                body = (render.ignition_bytes(found[0], found[1], variables, matchbox_shape=shape)
                        if req.route == "ignition"
                        else render.go_template(found[1].decode(), variables).encode())
            except UnicodeDecodeError as exc:
                raise render.RenderFailed(str(exc)) from None
        if body is not None and decision.credential and req.route == "ignition":
            body = render.with_credential(body, decision.credential)
        return body

    def metadata(self, req: policy.Request, raw_query: str) -> Reply:
        decision = policy.decide_metadata(req, self.store)
        if not decision.is_config:
            return not_found()
        self.record(decision.events)
        variables = render.template_variables(decision.group.metadata, decision.group.selector, req.labels, raw_query)
        # Matchbox's own (wrong) media type, kept so that clients see what Matchbox sends.
        return Reply(200, render.metadata_env(variables).encode(), headers={"Content-Type": "plain/text"})

    # -- POST /events --------------------------------------------------------------------------------
    def callback(self, req: policy.Request, mac: str, phase: str, message: str, detail: dict | None = None) -> Reply:
        return self._now(lambda: self.prepare_callback(req, mac, phase, message, detail))

    def prepare_callback(self, req: policy.Request, mac: str, phase: str, message: str,
                         detail: dict | None = None) -> Pending:
        decision = policy.decide_callback(req, mac, phase, message, self.state(mac), self.settings, detail or {})
        if decision.answer is policy.Answer.REFUSED:
            return Pending(mac, decision.events, Reply(decision.status, CALLBACK_REFUSED), refused_callback=True)
        return Pending(mac, decision.events, Reply(200, "ok\n"), serves=True, check_saved=True)

    # -- downloads -----------------------------------------------------------------------------------
    def downloaded(self, download: Download) -> None:
        """A boot asset's download as an event: the node's own (attributed by its /ipxe), else
        throttled so that a flood of anonymous downloads cannot fill the log."""
        if not download.path.rsplit("/", 1)[-1].endswith(BOOT_ASSETS):
            return
        self.metrics.bytes_sent += download.sent
        with self.events.transaction():
            mac = self.events.mac_at(download.address)
            if not mac and not self.throttle.allow(("download", download.address, download.path), time.monotonic()):
                return
            detail = {"route": "/assets/", "file": download.path[:300], "bytes": download.sent,
                      "range": download.range[:100], "seconds": round(download.seconds, 4)}
            if download.aborted:
                detail["aborted"] = True
            self.record([Event(EventKind.BOOT_ASSET if mac else EventKind.HTTP, mac=mac, source="http",
                               detail=detail)])

    def image_pulled(self, address: str, ref: str, digest: str, sent: int) -> None:
        """Every blob counts toward bytes sent; an image asked for by tag (once per pull) is an event,
        attributed to the node whose MAC the neighbour table holds for the puller."""
        self.metrics.bytes_sent += sent
        if "@" in ref:
            return
        mac = self.services.neighbour(address, None) if address else None
        self.record([Event(EventKind.IMAGE_PULL, mac=mac if mac in self.events.known else "", source="http",
                           message=ref, detail={"digest": digest, "ip": address})])
