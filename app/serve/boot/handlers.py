"""The boot routes over HTTP: Matchbox's read-only API (/ipxe, /grub, /ignition, /generic,
/metadata, /boot.ipxe), /assets downloads and node callbacks (POST /events).

Handlers only translate: a request becomes a `policy.Request` (its labels, its sender and the
sender's MAC in the neighbour table, the credential it presents), the boot service answers it, and
its `Reply` becomes a response. Every string from the network is treated as text.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from app.events import CALLBACK_PHASES
from app.events.disks import disks_detail, parse_disks
from app.layout import UEFI_BUILDS
from app.serve.boot import policy, render
from app.serve.boot.labels import normalize_mac, parse_labels
from app.serve.boot.service import BootService, Download, Reply, not_found
from app.serve.guard.limits import BodyTooSlow, read_body
from app.serve.transfer.assets import serve_asset
from app.serve.transfer.sender import ClientGone

log = logging.getLogger("bootstrap_node.http")
Neighbour = Callable[[str, str | None], str | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def response(reply: Reply) -> web.Response:
    if isinstance(reply.body, bytes):
        return web.Response(body=reply.body, status=reply.status, content_type=None if reply.headers else
                            reply.content_type, headers=reply.headers or None)
    return web.Response(text=reply.body, status=reply.status, content_type=reply.content_type, charset="utf-8",
                        headers=reply.headers or None)


def sender_mac(link_of: Callable[[str, str | None], tuple[str | None, str | None]],
               request: web.Request) -> tuple[str | None, str | None]:
    """The neighbour table's MAC for the request's sender (and another it had lately: `Services.link_of`),
    asked with our end of the connection (so that policy routing picks the route the replies take)
    and, for an IPv6 link-local sender, the interface it came in on (every link has fe80::/64)."""
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport else None
    ours = transport.get_extra_info("sockname") if transport else None
    address = request.remote or ""
    if isinstance(peer, tuple) and len(peer) == 4 and peer[3]:
        address = f"{peer[0]}%{peer[3]}"
    return link_of(address, ours[0] if isinstance(ours, tuple) else None)


def bearer(request: web.Request) -> str | None:
    kind, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() or None if kind.lower() == "bearer" else None


class BootHandlers:
    def __init__(self, service: BootService, assets: Path | None, max_callback_bytes: int, body_seconds: float,
                 loaders: Path | None = None):
        self.service = service
        self.assets = assets
        self.loaders = loaders
        self.max_callback_bytes = max_callback_bytes
        self.body_seconds = body_seconds  # a request body must arrive whole within this (Limits.idle_seconds)
        self.services = service.services  # read per request: tests swap the clock and the neighbour table

    def routes(self) -> list[tuple[str, Handler]]:
        return [("/boot.ipxe", self.boot_ipxe), ("/boot.ipxe.0", self.boot_ipxe), ("/ipxe", self.ipxe),
                ("/grub", self.grub), ("/ignition", self.ignition), ("/generic", self.generic),
                ("/metadata", self.metadata), ("/assets", self.assets_redirect), ("/assets/{tail:.*}", self.download),
                ("/events", self.post_event), ("/uefi/{name}", self.uefi_loader)]

    def _request(self, request: web.Request, route: str, labels: dict[str, str], bound: bool = True) -> policy.Request:
        """`bound`: the policy ties this route to a machine. The neighbour table binds requests to
        machines only on the appliance's own tree: a foreign Matchbox data dir never asks, and its
        boot path should not pay for reading it."""
        address = request.remote or ""
        asks = bound and address and self.service.settings.own_tree
        link, earlier = sender_mac(self.services.link_of, request) if asks else (None, None)
        return policy.Request(route, labels, address, link_mac=link, credential=bearer(request),
                              now=self.services.clock(), earlier_link_mac=earlier)

    async def boot_ipxe(self, request: web.Request) -> web.Response:
        return response(Reply(200, render.BOOT_IPXE))

    async def ipxe(self, request: web.Request) -> web.Response:
        labels = parse_labels(request.rel_url.raw_query_string)
        req = self._request(request, "ipxe", labels)
        return response(await self.service.answer(lambda: self.service.prepare_ipxe(req)))

    async def grub(self, request: web.Request) -> web.Response:
        labels = parse_labels(request.rel_url.raw_query_string)
        return response(self.service.grub(self._request(request, "grub", labels, bound=False)))

    async def ignition(self, request: web.Request) -> web.Response:
        return await self._config(request, "ignition")

    async def generic(self, request: web.Request) -> web.Response:
        return await self._config(request, "generic")

    async def _config(self, request: web.Request, route: str) -> web.Response:
        raw = request.rel_url.raw_query_string
        req = self._request(request, route, parse_labels(raw))
        return response(await self.service.answer(lambda: self.service.prepare_config(req, raw)))

    async def metadata(self, request: web.Request) -> web.Response:
        raw = request.rel_url.raw_query_string
        return response(self.service.metadata(self._request(request, "metadata", parse_labels(raw), bound=False), raw))

    async def uefi_loader(self, request: web.Request) -> web.StreamResponse:
        """The iPXE EFI build a UEFI HTTP Boot client was offered (supervise/httpboot.py): the same file
        TFTP serves, by name, and nothing else from tftp/."""
        name = request.match_info["name"]
        path = self.loaders / name if self.loaders is not None and name in UEFI_BUILDS else None
        if path is None or not path.is_file():
            return response(not_found())
        return web.FileResponse(path, headers={"Content-Type": "application/efi"})

    async def assets_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(location="/assets/")

    async def download(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            answer = await serve_asset(request, self.assets)  # files are sent by the time it returns
        except ClientGone:
            self.service.downloaded(self._download(request, started, 0, aborted=True))
            return web.Response(status=499)  # nobody reads it: counted as a client abort, not an error
        if request.method == "GET":
            self.service.downloaded(self._download(request, started, answer.content_length or 0))
        return answer

    @staticmethod
    def _download(request: web.Request, started: float, sent: int, aborted: bool = False) -> Download:
        return Download(request.remote or "", request.path, request.headers.get("Range", ""), sent,
                        time.monotonic() - started, aborted)

    async def post_event(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return response(Reply(405, "POST a JSON object {mac, phase, message}\n"))
        if (request.content_length or 0) > self.max_callback_bytes:
            return response(Reply(413, "event too large\n"))
        try:
            data = json.loads(await read_body(request, self.body_seconds))
        except BodyTooSlow:
            return response(Reply(408, "the body did not arrive in time\n"))
        except (ValueError, RecursionError):
            return response(Reply(400, "body must be JSON\n"))
        fields = callback_fields(data)
        if isinstance(fields, str):
            if self.service.throttle.allow(("malformed-callback",), time.monotonic()):
                log.warning("refused a malformed callback from %s (400): %s; more are counted, not logged",
                            request.remote, fields.strip())
            return response(Reply(400, fields))
        mac, phase, message, detail = fields
        if mac not in self.service.events.known:
            return response(Reply(404, f"no node has MAC {mac}\n"))
        req = self._request(request, "events", {})
        return response(await self.service.answer(
            lambda: self.service.prepare_callback(req, mac, phase, message[:2000], detail)))


def callback_fields(data: object) -> tuple[str, str, str, dict] | str:
    """(mac, phase, message, detail) of a callback body, each checked for its type before any use; or
    why not. A list where a string belongs (`"phase": []`) was a 500 with a traceback per request.
    detail carries the machine's disks when it reported them (app/events/disks.py bounds them)."""
    if not isinstance(data, dict):
        return "body must be a JSON object\n"
    mac, phase, message = data.get("mac"), data.get("phase"), data.get("message")
    message = "" if message is None else message
    if not isinstance(mac, str) or normalize_mac(mac) is None:
        return "mac: not a MAC address\n"
    if not isinstance(phase, str) or phase not in CALLBACK_PHASES:
        return f"phase: must be one of {', '.join(sorted(CALLBACK_PHASES))}\n"
    if not isinstance(message, str):
        return "message: must be a string\n"
    detail = {}
    if "disks" in data:
        disks = parse_disks(data["disks"])
        if isinstance(disks, str):
            return disks
        detail = disks_detail(*disks)
    return normalize_mac(mac) or "", phase, message, detail

