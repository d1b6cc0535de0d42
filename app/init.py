"""`init`: validate → generate → serve (in this process) → power on → wait → teardown.

One asyncio loop runs the server; the health gate (blocking kubernetes client) runs in a thread.
Ctrl-C or SIGTERM at any point stops both and leaves nothing running.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.cluster import Cluster
from app.exitcodes import ExitCode
from app.serve.errors import ServeError
from app.serve.runner import Server
from app.serve.settings import ServeSettings
from app.wait.gate import Outcome, WaitOptions, wait_for_cluster


@dataclass
class InitPlan:
    cluster: Cluster
    serve: ServeSettings
    wait: WaitOptions
    power_on: Callable[[], None]  # wake the nodes, or ask a person to
    report: Callable[[list[list[str]]], None] = lambda rows: None
    # Runs in its own thread until the event is set: BMC-powered nodes that report `installed`
    # get their next boots pointed at their disk (app.power.watch).
    watch_installs: Callable[[threading.Event], None] | None = None


def run(plan: InitPlan) -> Outcome:
    """Serve, power on, wait, stop; the outcome carries wait's exit code (or 1 when serving failed)."""
    try:
        return asyncio.run(run_async(plan))
    except ServeError as exc:
        return Outcome(ExitCode.INVALID, f"serve failed: {exc}")


async def run_async(plan: InitPlan) -> Outcome:
    server = Server(plan.serve)
    stop = threading.Event()
    interrupted = False

    def on_signal() -> None:
        nonlocal interrupted
        interrupted = True
        stop.set()
        server.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    watcher = None
    try:
        await server.start()
        await asyncio.to_thread(plan.power_on)
        # Only now: power-on sets each BMC node's network boot, and the watch then points an installed
        # node at its disk; the other order could leave it on the network. The watch's log position
        # was taken before serving, so an `installed` reported during power-on is not missed.
        if plan.watch_installs is not None:
            watcher = asyncio.create_task(asyncio.to_thread(plan.watch_installs, stop))
        gate = asyncio.create_task(asyncio.to_thread(
            wait_for_cluster, plan.cluster, plan.serve.output, plan.wait, stop, plan.report))
        stopped = asyncio.create_task(server.wait())
        await asyncio.wait({gate, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not gate.done():  # the server stopped first: a signal, or dnsmasq gave up
            stop.set()
        outcome = await gate
        stopped.cancel()
    finally:
        stop.set()
        if watcher is not None:
            await watcher
        await server.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if server.failure:
        return Outcome(ExitCode.INVALID, f"serve failed: {server.failure}")
    if interrupted:
        return Outcome(ExitCode.INTERRUPTED, "interrupted; stopped serving")
    return outcome
