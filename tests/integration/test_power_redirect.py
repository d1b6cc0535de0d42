"""Issue #33, item 8: when a Redfish BMC redirects to another host, that host must not receive the
BMC's password. The BMCs here are stand-ins (http.server on two loopback
addresses): no real BMC redirects off-host on purpose, which is exactly the hostile case."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.cluster.model import Bmc
from app.power.redfish import Redfish

SYSTEM = {"@odata.id": "/redfish/v1/Systems/uuid-1", "PowerState": "Off", "Boot": {}}


@contextmanager
def bmc(address: str, redirect_to: str | None = None, same_host: dict[str, str] | None = None):
    """A stand-in BMC: with `redirect_to`, every GET answers 307 there; else it serves one system,
    answering 307 to another path of its own for each path in `same_host`. It keeps each request's
    path and Authorization header in `.seen`."""
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append((self.path, self.headers.get("Authorization")))
            if redirect_to is not None or self.path in (same_host or {}):
                self.send_response(307)
                self.send_header("Location", (same_host or {}).get(self.path) or redirect_to + self.path)
                self.end_headers()
                return
            body = json.dumps({"Members": [{"@odata.id": SYSTEM["@odata.id"]}]} if self.path.endswith("Systems")
                              else SYSTEM).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((address, 0), Handler)
    server.seen = seen
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def url(server) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"


def power_of(address: str) -> str:
    way = Redfish("cp-1", Bmc(address=address, username="admin", password_env="UNUSED"), password="s3cret")
    return way.status().power


def test_a_redirect_to_another_host_carries_no_password():
    with bmc("127.0.0.3") as elsewhere, bmc("127.0.0.1", redirect_to=url(elsewhere)) as hostile:
        assert power_of(url(hostile)) == "off"  # the redirect is followed...
        assert hostile.seen and all(auth for _, auth in hostile.seen)
        assert elsewhere.seen and all(auth is None for _, auth in elsewhere.seen)  # ...without the password


def test_a_redirect_on_the_same_host_keeps_the_password():
    """Redfish's own use: a system named in the URL answers 307 to its UUID path on the same BMC."""
    with bmc("127.0.0.1") as real:
        with bmc("127.0.0.1", redirect_to=url(real)) as other_port:  # same host, another port: another origin
            assert power_of(url(other_port)) == "off"
            assert all(auth is None for _, auth in real.seen)
    with bmc("127.0.0.1", same_host={"/redfish/v1/Systems/by-name": SYSTEM["@odata.id"]}) as named:
        way = Redfish("cp-1", Bmc(address=url(named), username="admin", password_env="UNUSED", system="by-name"),
                      password="s3cret")
        assert way.status().power == "off"
        assert [path for path, _ in named.seen][:2] == ["/redfish/v1/Systems/by-name", SYSTEM["@odata.id"]]
        assert all(auth for _, auth in named.seen)
