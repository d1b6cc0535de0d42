"""The boot routes: Matchbox's read-only API (/ipxe, /grub, /ignition, /generic, /metadata),
/assets downloads and node callbacks (/events).

Handlers only translate: the boot policy (`policy.py`) decides what a machine gets, `render.py`
renders it, and the events a decision carries are recorded here. Every string from the network is
treated as text.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from app.events import CALLBACK_PHASES, Event
from app.serve.boot import policy, render
from app.serve.boot.store import is_unicast, normalize_mac, parse_labels
from app.serve.context import CTX, Context, not_found, text
from app.serve.transfer.assets import serve_asset
from app.serve.transfer.sender import ClientGone

log = logging.getLogger("bootstrap_node.http")
BOOT_ASSETS = ("vmlinuz", "cpio.gz", ".efi", ".kpxe", "image.bin.bz2", ".raw")
MAX_DISCOVERED = 256  # distinct unknown MACs kept for `discover` and the status page
DISCOVERY_FULL = f"more than {MAX_DISCOVERED} unknown machines PXE-booted; the rest are not listed"
# With several workers, a decision the event log could not record is not acted on (events/shared.py).
UNSAVED = "the event log could not be written (is the disk full?); try again\n"


def _worth_recording_discovery(ctx: Context, event: Event) -> bool:
    """Unknown machines are for `discover`: real NICs only, each at most once a minute, and at most
    MAX_DISCOVERED of them (a flood of made-up MACs is counted, not kept)."""
    if not is_unicast(event.mac):
        return False
    if event.mac not in ctx.events.discovered and len(ctx.events.discovered) >= MAX_DISCOVERED:
        ctx.metrics.alert(DISCOVERY_FULL)
        return False
    return ctx.throttle.allow(("discovered", event.mac), time.monotonic())


def _boot_request(request: web.Request, route: str, labels: dict[str, str]) -> policy.Request:
    ctx = request.app[CTX]
    address = request.remote or ""
    # The neighbour table binds requests to machines only on the appliance's own tree: a foreign
    # Matchbox data dir never asks, and its boot path should not pay for reading it.
    link = _sender_mac(ctx, request) if address and ctx.config.own_tree else None
    return policy.Request(route, labels, address, link_mac=link, credential=_bearer(request), now=ctx.clock())


def _sender_mac(ctx: Context, request: web.Request) -> str | None:
    """The neighbour table's MAC for the request's sender, asked with our end of the connection (so
    that policy routing picks the route the replies take) and, for an IPv6 link-local sender, the
    interface it came in on (every link has fe80::/64)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport else None
    ours = transport.get_extra_info("sockname") if transport else None
    address = request.remote or ""
    if isinstance(peer, tuple) and len(peer) == 4 and peer[3]:
        address = f"{peer[0]}%{peer[3]}"
    return ctx.neighbour(address, ours[0] if isinstance(ours, tuple) else None)


def _bearer(request: web.Request) -> str | None:
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if kind.lower() == "bearer" else None


def _answer(decision: policy.Decision) -> web.Response:
    if decision.status == 404:
        return not_found()
    return text(decision.body, decision.status)


async def boot_ipxe(request: web.Request) -> web.Response:
    return text(render.BOOT_IPXE)


async def ipxe(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    labels = parse_labels(request.rel_url.raw_query_string)
    req = _boot_request(request, "ipxe", labels)
    mac = policy.mac_label(labels)
    with ctx.events.transaction():  # its `ipxe` event also ties the address's downloads to the node
        decision = policy.decide_ipxe(req, ctx.store, ctx.events.state(mac), ctx.events.known, ctx.config.settings)
        ctx.record([e for e in decision.events if e.kind != "discovered" or _worth_recording_discovery(ctx, e)])
    return _answer(decision)


async def grub(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    group = ctx.store.select(parse_labels(request.rel_url.raw_query_string))
    profile = ctx.store.profile(group.profile) if group else None
    if profile is None or not profile.get("boot"):
        return not_found()
    return text(render.grub_script(profile["boot"]))


async def ignition(request: web.Request) -> web.Response:
    return await _config(request, "ignition")


async def generic(request: web.Request) -> web.Response:
    return await _config(request, "generic")


async def _config(request: web.Request, route: str) -> web.Response:
    ctx = request.app[CTX]
    with ctx.events.transaction():  # "once" means once: deciding and recording it are one step
        return _config_in_transaction(request, route, ctx)


def _config_in_transaction(request: web.Request, route: str, ctx: Context) -> web.Response:
    raw = request.rel_url.raw_query_string
    labels = parse_labels(raw)
    decision = policy.decide_config(_boot_request(request, route, labels), ctx.store, ctx.events.state,
                                    ctx.config.settings, ctx.new_credential)
    if not decision.is_config:
        ctx.record(decision.events)
        return _answer(decision)
    try:
        body = _render_config(ctx, route, decision, labels, raw)
    except render.RenderFailed as exc:
        log.warning("%s for %s: %s", route, decision.group.id, exc)
        return not_found()
    if body is None:
        return not_found()
    mac = policy.mac_label(labels)
    for event in decision.events:
        event.detail["bytes"] = len(body)
    if not decision.events and route == "ignition" and mac:
        decision.events.append(Event("http", mac=mac, source="http", detail={"route": "/ignition",
                                                                              "group": decision.group.id}))
    ctx.record(decision.events)
    if not ctx.events.saved():
        return text(UNSAVED, 503)
    if route == "ignition":
        return web.Response(body=body, content_type="application/json")
    return text(body.decode(errors="replace"))


def _render_config(ctx: Context, route: str, decision: policy.Decision, labels: dict, raw: str) -> bytes | None:
    name = decision.profile[f"{route}_id"]
    if route == "ignition" and name.endswith((".ign", ".ignition")):
        # Raw configs do not depend on the request: render once per version of the file.
        body = ctx.store.served_ignition(name, lambda data: render.ignition_bytes(name, data, {}))
    else:
        found = ctx.store.text(route, name)
        if found is None:
            return None
        variables = render.template_variables(decision.group.metadata, decision.group.selector, labels, raw)
        try:
            body = (render.ignition_bytes(found[0], found[1], variables) if route == "ignition"
                    else render.go_template(found[1].decode(), variables).encode())
        except UnicodeDecodeError as exc:
            raise render.RenderFailed(str(exc)) from None
    if body is not None and decision.credential and route == "ignition":
        body = render.with_credential(body, decision.credential)
    return body


async def metadata(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    raw = request.rel_url.raw_query_string
    labels = parse_labels(raw)
    group = ctx.store.select(labels)
    if group is None:
        return not_found()
    mac = policy.mac_label(labels)
    if mac:
        ctx.events.record(Event("http", mac=mac, source="http", detail={"route": "/metadata"}))
    variables = render.template_variables(group.metadata, group.selector, labels, raw)
    return web.Response(body=render.metadata_env(variables).encode(), headers={"Content-Type": "plain/text"})


async def assets_redirect(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(location="/assets/")


async def assets(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    started = time.monotonic()
    try:
        response = await serve_asset(request, ctx.config.assets)  # files are sent by the time it returns
    except ClientGone:
        _downloaded(ctx, request, started, 0, aborted=True)
        return web.Response(status=499)  # nobody reads it: counted as a client abort, not an error
    if request.method == "GET":
        _downloaded(ctx, request, started, response.content_length or 0)
    return response


def _downloaded(ctx: Context, request: web.Request, started: float, sent: int, aborted: bool = False) -> None:
    """A boot asset's download as an event: the node's own (attributed by its /ipxe), else throttled
    so that a flood of anonymous downloads cannot fill the log."""
    name = request.path.rsplit("/", 1)[-1]
    if not name.endswith(BOOT_ASSETS):
        return
    ctx.metrics.bytes_sent += sent
    with ctx.events.transaction():
        mac = ctx.events.mac_at(request.remote or "")
        if not mac and not ctx.throttle.allow(("download", request.remote, request.path), time.monotonic()):
            return
        detail = {"route": "/assets/", "file": request.path[:300], "bytes": sent,
                  "range": request.headers.get("Range", "")[:100], "seconds": round(time.monotonic() - started, 4)}
        if aborted:
            detail["aborted"] = True
        ctx.events.record(Event("kernel" if mac else "http", mac=mac, source="http", detail=detail))


async def post_event(request: web.Request) -> web.Response:
    ctx = request.app[CTX]
    if request.method != "POST":
        return text("POST a JSON object {mac, phase, message}\n", 405)
    if (request.content_length or 0) > ctx.config.max_callback_bytes:
        return text("event too large\n", 413)
    try:
        data = json.loads(await request.read())
    except (ValueError, RecursionError):
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
    credential = _bearer(request)
    with ctx.events.transaction():
        if not policy.callback_allowed(phase, credential, ctx.events.state(mac), ctx.config.settings, ctx.clock()):
            ctx.metrics.bad_callbacks += 1
            ctx.record(policy.refuse(_boot_request(request, "events", {}), mac, policy.CALLBACK_REFUSED).events)
            return text("callback refused: missing or wrong credential\n", 401 if credential is None else 403)
        ctx.events.record(Event(phase, mac=mac, source="node", message=str(data.get("message", ""))[:2000]))
        if not ctx.events.saved():
            return text(UNSAVED, 503)
    return text("ok\n")


