"""`serve`'s lifecycle: the HTTP server, dnsmasq, chronyd and the built-in TFTP server, from start to clean stop.

SIGINT/SIGTERM (or `teardown`, through the state file) stops accepting, lets in-flight
downloads finish for a bounded time, stops dnsmasq, flushes the event log and exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket

from aiohttp import web

from app.events import Event, EventKind, EventLog, SharedEventLog
from app.layout import CHRONY_CONF, TFTP, UEFI_LOADERS
from app.serve.app import BOOT, build_app
from app.serve.boot.service import BootService
from app.serve.boot.services import Services
from app.serve.boot.store import MatchboxStore
from app.serve.errors import ServeError
from app.serve.guard import limits, quiet
from app.serve.settings import Dhcp, ServeSettings, Tftp
from app.serve.supervise import claim, workers
from app.serve.supervise.child import ChildFailed
from app.serve.supervise.chrony import Chrony
from app.serve.supervise.dnsmasq import Supervisor, conf_for
from app.serve.supervise.httpboot import HttpBootResponder
from app.serve.supervise.tftp import BuiltinTftp

log = logging.getLogger("bootstrap_node.serve")
# client, request line, status, bytes, seconds spent answering (the appliance's share of a boot)
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf'


class Server:
    """Everything `serve` runs. `start()` then `wait()`; `stop()` from anywhere in the loop."""

    def __init__(self, opts: ServeSettings):
        self.opts = opts
        self.store = MatchboxStore(opts.app.data_dir)
        self.events = (SharedEventLog if opts.workers > 1 else EventLog)(opts.output, self.store.known_nodes,
                                                                        only_known=True)
        self.services = Services(self.store, self.events)
        if opts.workers > 1:
            self.services.peer_metrics = lambda: workers.others(opts.output, opts.worker)
        self.pool: workers.Pool | None = None
        self._owns_output = False  # set once no other serve holds the output dir: only then is it ours to tidy
        self.runner: web.AppRunner | None = None
        self.supervisor: Supervisor | None = None
        self.boot: BootService | None = None
        self.chrony: Chrony | None = None
        self.tftp: BuiltinTftp | None = None
        self.httpboot: HttpBootResponder | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.failure: Exception | None = None

    @property
    def url(self) -> str:
        return f"http://{self.opts.host}:{self.opts.port}"

    async def start(self) -> None:
        if self.opts.leader:
            claim.claim(self.opts.output)
            self._owns_output = True
            workers.clear(self.opts.output)
        self.store.groups()  # index the groups before the first machine asks, not while it waits
        self.events.open()
        quiet.quiet_exception_handler(asyncio.get_running_loop())
        caps = self.opts.app.limits
        cap = limits.connection_cap(caps.max_connections, limits.raise_nofile())
        app = build_app(self.opts.app, self.services)
        self.runner = web.AppRunner(app, shutdown_timeout=self.opts.shutdown_timeout,
                                    access_log=logging.getLogger("bootstrap_node.access") if self.opts.access_log
                                    else None,
                                    access_log_format=ACCESS_LOG_FORMAT, keepalive_timeout=caps.idle_seconds)
        await self.runner.setup()
        # On the appliance's own tree each connection's sender is looked up as it is accepted
        # (kernel/claims.py); a foreign tree binds no machine and pays nothing.
        limits.cap_connections(self.runner.server, cap, self.services.metrics.connection_refused,
                               per_address=caps.per_address,
                               **({"on_accepted": self.services.accepted} if self.opts.app.boot.own_tree else {}))
        self.boot = app[BOOT]
        shared_port = self.opts.workers > 1
        try:
            if shared_port and self.opts.leader:
                _check_port_free(self.opts.host, self.opts.port)
            await web.TCPSite(self.runner, self.opts.host, self.opts.port, backlog=1024, reuse_port=shared_port).start()
        except OSError as exc:
            await self.runner.cleanup()
            self.events.close()
            raise ServeError(f"cannot listen on {self.opts.host}:{self.opts.port}: {exc.strerror} "
                             "(is another server using it? is the address on this host?)") from None
        self._tasks.append(asyncio.create_task(self._follow_events()))
        if self.opts.leader:
            self._start_leader_parts()
            if self.opts.dhcp == Dhcp.proxy and self.opts.app.boot.own_tree:
                self.httpboot = await HttpBootResponder.start(self.opts.host, self.url,
                                                              self.opts.app.data_dir / UEFI_LOADERS,
                                                              self._boot_exchange_event)
        log.info("serving %s (data %s, assets %s%s)", self.url, self.opts.app.data_dir, self.opts.app.assets,
                 f", worker {self.opts.worker + 1} of {self.opts.workers}" if shared_port else "")

    def _boot_exchange_event(self, event: Event) -> None:
        """DHCP and TFTP exchanges (dnsmasq's and the HTTP Boot responder's) take the boot routes' one
        record path: a machine that is no node is at most a capped, throttled discovery."""
        self.boot.record([event])

    def _start_leader_parts(self) -> None:
        """What only one process may do: the state file, dnsmasq, TFTP, the other workers."""
        self._write_state()
        self.events.record(Event(EventKind.SERVE_STARTED, source="serve", detail={"url": self.url, "pid": os.getpid()}))
        if self.opts.dhcp == Dhcp.proxy or self.opts.tftp == Tftp.dnsmasq:
            conf = conf_for(self.opts.output, self.opts.dhcp)
            self.supervisor = Supervisor(conf, self._boot_exchange_event, binary=self.opts.dnsmasq_binary,
                                         on_restart=self._count_restart, on_started=self._write_state)
            self._tasks.append(asyncio.create_task(self._watch(self.supervisor.run())))
        if (self.opts.output / CHRONY_CONF).is_file():  # generate wrote it: bootstrap.time_server
            self.chrony = Chrony(self.opts.output / CHRONY_CONF, self.events.record, on_restart=self._chrony_restarted)
            self._tasks.append(asyncio.create_task(self._watch(self.chrony.run())))
        if self.opts.tftp == Tftp.builtin:
            self.tftp = BuiltinTftp(self.opts.output / TFTP, self.opts.host, self.opts.tftp_port)
            self.tftp.start()
        if self.opts.workers > 1:
            self.pool = workers.Pool(self.opts.to_json(), self.opts.workers)
            self.pool.start()

    async def _follow_events(self) -> None:
        """Take `reinstall` and `wait` events written by other processes (and, with several workers,
        the other workers' events, and publish our counters), within a second."""
        failing = False
        while True:
            await asyncio.sleep(1.0)
            try:
                if self.pool is not None and not self._stop.is_set():
                    self.pool.restart_exited(self._worker_exited)
                await asyncio.to_thread(self.events.follow)
                if self.opts.workers > 1:
                    await asyncio.to_thread(workers.publish, self.opts.output, self.opts.worker,
                                            self.services.metrics.counters())
                failing = False
            except OSError as exc:  # no descriptors, a full disk: try again next second, say so once
                if not failing:
                    log.warning("cannot follow the event log or publish counters: %s", exc)
                failing = True

    def _worker_exited(self, index: int, child) -> None:
        log.error("worker %d (pid %d) exited with %s: starting it again", index + 1, child.pid, child.returncode)
        self.events.record(Event(EventKind.WORKER_RESTARTED, source="serve",
                                 detail={"worker": index + 1, "pid": child.pid, "exit": child.returncode}))

    def _chrony_restarted(self) -> None:
        self.events.record(Event(EventKind.CHRONYD_RESTARTED, source="serve"))

    def _count_restart(self) -> None:
        self.services.metrics.dnsmasq_restarts += 1
        self.events.record(Event(EventKind.DNSMASQ_RESTARTED, source="serve"))

    async def _watch(self, coro) -> None:
        try:
            await coro
        except ChildFailed as exc:
            self.failure = exc
            self._stop.set()

    def _write_state(self, dnsmasq_pid: int | None = None) -> None:
        claim.record(self.opts.output, self.url, dnsmasq_pid)

    def stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def shutdown(self) -> None:
        if self.pool is not None:
            await asyncio.to_thread(self.pool.stop, self.opts.shutdown_timeout + 5)
        for child in (self.supervisor, self.chrony):
            if child is not None:
                await child.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.tftp is not None:
            self.tftp.stop()
        if self.httpboot is not None:
            self.httpboot.stop()
        if self.runner is not None:
            await self.runner.cleanup()  # stops accepting, waits up to shutdown_timeout for requests
        if self._owns_output:
            self.events.record(Event(EventKind.SERVE_STOPPED, source="serve",
                                     message=str(self.failure) if self.failure else ""))
        self.events.close()
        if self._owns_output:  # a serve refused because another runs must not remove that one's state
            claim.release(self.opts.output)

async def serve_forever(opts: ServeSettings) -> None:
    """Run until SIGINT/SIGTERM; raise ServeError/ChildFailed for what the user must fix."""
    server = Server(opts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    try:
        await server.start()
        _settle_heap()
        await server.wait()
    finally:
        await server.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if server.failure:
        raise server.failure


def _check_port_free(host: str, port: int) -> None:
    """SO_REUSEPORT would let us share a port that another server of this user also opened with it:
    the leader first makes sure nobody listens there."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _settle_heap() -> None:
    """What is alive once serving starts (modules, the group index, templates) lives as long as the
    process: move it out of the garbage collector's sight, so that a full collection walks only what
    requests create (a full collection otherwise pauses the event loop for as long as walking all of
    it takes)."""
    gc.collect()
    gc.freeze()
