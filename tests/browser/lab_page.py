"""A lab-like rack frozen mid-install, served by the real HTTP app: what the browser test loads and
what `make screenshot` photographs (docs/status-page.png).

Thirteen nodes: one in each of the eleven phases, one that failed while installing, one never seen;
a download in progress; refused requests; a dnsmasq restart; unknown machines. Hostile strings sit
where the network could put them (a failure message, an alert's sender, an unknown MAC and address).

    python -m tests.browser.lab_page OUT.png     # a screenshot with headless Chromium
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from app.events import PHASES, Event, EventKind, EventLog
from app.serve.app import build_app
from app.serve.boot import policy
from app.serve.boot.services import Services
from app.serve.boot.store import MatchboxStore
from app.serve.settings import AppSettings

T0 = dt.datetime(2025, 3, 14, 9, 0, 0, tzinfo=dt.UTC).timestamp()
NOW = T0 + 1500  # the page's clock: 25 minutes into the install
IMAGE = "/assets/flatcar/current/flatcar_production_image.bin.bz2"
IMAGE_SIZE = 478_150_000  # a sparse file: the page stats it, nothing reads it
IMAGE_SENT = 301 * 1024 * 1024
HOSTILE_ERROR = 'disk /dev/sda not found <script>alert(1)</script> "><img src=x onerror=alert(2)> [/]'
HOSTILE_SENDER = '"><img src=x onerror=alert(3)>'
HOSTILE_MAC = "<script>alert(4)</script>"
HOSTILE_ADDRESS = "[/]<b>10.0.0.1</b>"
STRANGER = "52:54:00:00:09:99"
WRITE_FAILURES = 2
# Seconds each phase takes in this rack (a stand-in's pace, about a real one's).
PACE = {"dhcp": 2, "tftp": 3, "ipxe": 4, "kernel": 50, "install-ignition": 6, "installing": 240,
        "installed": 90, "final-ignition": 8, "kubeadm": 110, "joined": 40, "ready": 0}


@dataclass(frozen=True)
class LabNode:
    name: str
    mac: str
    reached: str  # the phase it is in now; "" never booted
    failed: bool = False


def lab_nodes() -> list[LabNode]:
    nodes = [LabNode(f"{'ctrl' if i < 3 else 'worker'}-{i + 1:02d}", f"52:54:00:00:01:{i + 1:02x}", phase)
             for i, phase in enumerate(reversed(PHASES))]
    return nodes + [LabNode("worker-12", "52:54:00:00:01:0c", "installing", failed=True),
                    LabNode("worker-13", "52:54:00:00:01:0d", "")]


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def elapsed(phase: str) -> float:
    """Seconds from the first DHCP request to entering `phase`, at PACE."""
    return sum(PACE[p] for p in PHASES[:PHASES.index(phase)])


def node_events(node: LabNode) -> list[Event]:
    """The node walks every phase up to `reached` at PACE and entered that one a little before NOW
    (a failed node reported its failure a minute ago)."""
    if not node.reached:
        return []
    into = 200 if node.failed else (60 if node.reached == "ready" else PACE[node.reached] / 2)
    start = NOW - elapsed(node.reached) - into
    events, t = [], start
    for phase in PHASES[:PHASES.index(node.reached) + 1]:
        events.append(Event(phase, mac=node.mac, source="node" if phase in ("installing", "installed") else "http",
                            ts=iso(t)))
        t += PACE[phase]
    if node.reached == "installing":
        events.append(Event(EventKind.BOOT_ASSET, mac=node.mac, source="http", ts=iso(t - PACE["installing"] + 30), detail={
            "route": "/assets/", "file": IMAGE, "bytes": IMAGE_SENT, "range": "bytes=0-315621375"}))
    if node.failed:
        events.append(Event("failed", mac=node.mac, source="node", message=HOSTILE_ERROR, ts=iso(NOW - 60)))
    return events


def alert(reason: str, remote: str, route: str, mac: str, at: float) -> Event:
    return Event("alert", mac=mac, source="http", message=reason, ts=iso(at),
                 detail={"reason": reason, "route": route, "remote": remote})


def rack_events(nodes: list[LabNode]) -> list[Event]:
    events: list[Event] = []
    for node in nodes:
        events += node_events(node)
    events += [
        Event("dnsmasq-restarted", source="serve", ts=iso(NOW - 700)),
        Event("api-ready", source="wait", message="https://10.99.0.10:6443", ts=iso(NOW - 95)),
        Event("discovered", mac=STRANGER, source="http", detail={"ip": "10.99.0.150"}, ts=iso(NOW - 600)),
        Event("discovered", mac=HOSTILE_MAC, source="http", detail={"ip": HOSTILE_ADDRESS}, ts=iso(NOW - 590)),
        alert(policy.CALLBACK_REFUSED, "10.99.0.77", "events", nodes[3].mac, NOW - 500),
        alert(policy.CALLBACK_REFUSED, "10.99.0.78", "events", nodes[3].mac, NOW - 300),
        alert(policy.NOT_THE_BOOTED_MACHINE, HOSTILE_SENDER, "ignition", nodes[5].mac, NOW - 200),
    ]
    return sorted(events, key=lambda e: e.ts)


def write_rack(root: Path) -> tuple[Path, Path, Path]:
    """The data dir (one group per node), the output dir with events.jsonl, and an assets root."""
    data, output, assets = root / "matchbox", root / "output", root / "assets"
    nodes = lab_nodes()
    for node in nodes:
        group = {"id": node.name, "profile": "install", "selector": {"mac": node.mac}, "metadata": {"name": node.name}}
        (data / "groups").mkdir(parents=True, exist_ok=True)
        (data / "groups" / f"{node.name}.json").write_text(json.dumps(group))
    output.mkdir(parents=True, exist_ok=True)
    (output / "events.jsonl").write_text("".join(e.line() for e in rack_events(nodes)))
    image = assets / IMAGE[len("/assets/"):]
    image.parent.mkdir(parents=True, exist_ok=True)
    with image.open("wb") as f:
        f.truncate(IMAGE_SIZE)
    return data, output, assets


@contextmanager
def serving(root: Path) -> Iterator[str]:
    """The real app (serve's build_app) over the rack, on a loopback port, in a thread of
    its own so a blocking browser driver can load it. Yields the base URL."""
    data, output, assets = write_rack(root)
    store = MatchboxStore(data)
    events = EventLog(output, store.known_nodes)
    events.write_failures = WRITE_FAILURES  # a full disk cannot be staged from the file itself
    services = Services(store, events, clock=lambda: NOW)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(AppSettings(data_dir=data, assets=assets), services))
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(out: Path, width: int = 1000, height: int = 1640) -> None:
    browser = chromium()
    if browser is None:
        raise SystemExit("needs Chromium (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp, serving(Path(tmp)) as url:
        subprocess.run([browser, *CHROMIUM_FLAGS, f"--window-size={width},{height}",
                        f"--user-data-dir={tmp}/profile", f"--screenshot={out.resolve()}", url + "/"],
                       check=True, capture_output=True, timeout=120)


if __name__ == "__main__":
    screenshot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/status-page.png"))
