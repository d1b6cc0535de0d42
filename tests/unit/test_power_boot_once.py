"""Boot order through a BMC: `start` asks for a network boot for the next boot only, then powers on.
The emulators cannot tell: sushy stores Redfish `Once` as `Continuous`, and the IPMI server reports
"once" whatever ipmitool asked. So these stand-ins only record: a small HTTP server for the exact PATCH
body the Redfish client sends, a recording `ipmitool` for the exact command lines."""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.cluster.model import Bmc
from app.power import start
from app.power.ipmi import Ipmi
from app.power.redfish import Redfish

SYSTEM = "/redfish/v1/Systems/1"


class Recorder(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, dict | None]] = []

    def log_message(self, *args) -> None:
        pass

    def _answer(self, body: dict | None = None, status: int = 200) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.calls.append(("GET", self.path, None))
        if self.path == "/redfish/v1/Systems":
            self._answer({"Members": [{"@odata.id": SYSTEM}]})
        else:
            self._answer({"@odata.id": SYSTEM, "PowerState": "Off", "Boot": {},
                          "Actions": {"#ComputerSystem.Reset": {"target": f"{SYSTEM}/Actions/ComputerSystem.Reset"}}})

    def _body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_PATCH(self) -> None:
        self.calls.append(("PATCH", self.path, self._body()))
        self._answer(status=200)

    def do_POST(self) -> None:
        self.calls.append(("POST", self.path, self._body()))
        self._answer(status=200)


@pytest.fixture
def bmc():
    Recorder.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Bmc(address=f"http://127.0.0.1:{server.server_address[1]}", username="admin", password_env="X")
    server.shutdown()
    server.server_close()


def test_redfish_start_sets_pxe_for_the_next_boot_only_then_powers_on(bmc):
    assert start(Redfish("cp-1", bmc, password="secret")) == "network boot once, powering on"
    writes = [(method, path, body) for method, path, body in Recorder.calls if method != "GET"]
    assert writes == [
        ("PATCH", SYSTEM, {"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}),
        ("POST", f"{SYSTEM}/Actions/ComputerSystem.Reset", {"ResetType": "On"})]


IPMITOOL = """#!/bin/sh
# Stand-in ipmitool: records its command (after -E), answers power status "off".
while [ "$1" != -E ]; do shift; done; shift
echo "$*" >> "$RECORD"
[ "$*" = "chassis power status" ] && echo "Chassis Power is off"
exit 0
"""


def test_ipmi_start_sets_pxe_without_persistent_then_powers_on(tmp_path, monkeypatch):
    (tmp_path / "ipmitool").write_text(IPMITOOL)
    (tmp_path / "ipmitool").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("RECORD", str(tmp_path / "calls"))
    way = Ipmi("worker-1", Bmc(address="10.20.1.21", username="ADMIN", password_env="X"), password="secret")
    assert start(way) == "network boot once, powering on"
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0] == "chassis bootdev pxe" and calls[-1] == "chassis power on"  # status is asked between
