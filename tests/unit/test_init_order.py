"""`init` points installed BMC nodes at their disk only after power-on set their network boot: the
other order let a slow power-on put a node that had already installed back on PXE."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import app.init
from app.wait.gate import Outcome


class FakeServer:
    """Stands in for serve (the order of power-on and the install watch is all this test is about)."""

    failure = None

    def __init__(self, options):
        pass

    async def start(self):
        pass

    async def wait(self):
        await app.init.asyncio.Event().wait()

    def stop(self):
        pass

    async def shutdown(self):
        pass


def test_the_install_watch_starts_after_power_on(monkeypatch):
    order: list[str] = []
    watch_started = threading.Event()

    def power_on():
        order.append("power-on begins")
        # A watch started alongside would begin within this wait; with the right order it never does.
        watch_started.wait(0.5)
        order.append("power-on ends")

    def watch_installs(stop):
        order.append("watch begins")
        watch_started.set()
        stop.wait()

    def gate(cluster, output, options, stop, report):
        watch_started.wait(10)
        return Outcome(0, "healthy")

    monkeypatch.setattr(app.init, "Server", FakeServer)
    monkeypatch.setattr(app.init, "wait_for_cluster", gate)
    plan = app.init.InitPlan(cluster=None, serve=SimpleNamespace(output=None), wait=None, power_on=power_on, watch_installs=watch_installs)
    outcome = app.init.run(plan)
    assert outcome.code == 0
    assert order == ["power-on begins", "power-on ends", "watch begins"]
