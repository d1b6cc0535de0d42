"""Boot services as cluster-mode replicas, without HTTP: each with its own event log and its own view of
one Machine `cp-1`, over a Machines API (the real one, or a unit test's stand-in). Requests come from
the machine itself (its address and link MAC), as the firmware and the installer make them."""

from __future__ import annotations

import json
from pathlib import Path

from app.events import EventLog
from app.serve.boot import policy
from app.serve.boot.service import BootService, Reply
from app.serve.boot.services import Services
from app.serve.cluster.machine_watch import MachineView, fold_in
from app.serve.cluster.window_store import MachineWindows
from app.serve.settings import Bind, BootSettings
from tests.support.fakes import node_store

MAC, ADDRESS, NOW = "52:54:00:00:00:11", "10.0.0.50", 1_765_000_000.0
IGNITION = json.dumps({"ignition": {"version": "3.4.0"}}).encode()


def replica(tmp_path: Path, name: str, api) -> BootService:
    """One serve replica: its own event log, its own view of the Machine (as its watch keeps it)."""
    fake = node_store({"cp-1": MAC})
    fake.files[("ignition", "cp-1-install.ign")] = IGNITION
    fake.files[("ignition", "cp-1.ign")] = IGNITION
    (tmp_path / name).mkdir()
    events = EventLog(tmp_path / name, fake.known_nodes)
    events.open()
    known = {"cp-1": MachineView.of(api.get("cp-1"))}
    credentials = iter(f"{name}-cred-{i}" for i in range(100))
    settings = BootSettings(bind=Bind.link)
    services = Services(fake, events, new_credential=lambda: next(credentials), clock=lambda: NOW)
    services.windows = MachineWindows(lambda: known, lambda m: fold_in(known, m), api, settings.window_seconds)
    boot = BootService(settings, services)
    boot.known = known  # the test plays its watch
    return boot


def request(route: str, credential: str | None = None, **labels) -> policy.Request:
    return policy.Request(route, {"mac": MAC, **labels}, ADDRESS, MAC, credential, NOW + 60)


async def ipxe(boot: BootService) -> Reply:
    return await boot.answer(lambda: boot.prepare_ipxe(request("ipxe")))


async def ignition(boot: BootService, credential: str | None = None, **labels) -> Reply:
    return await boot.answer(lambda: boot.prepare_config(request("ignition", credential, **labels), f"mac={MAC}"))


async def report(boot: BootService, phase: str, credential: str) -> Reply:
    return await boot.answer(lambda: boot.prepare_callback(request("events", credential), MAC, phase, ""))
