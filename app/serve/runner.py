"""`serve`'s lifecycle: the HTTP server, dnsmasq, chronyd and the built-in TFTP server, from start to clean stop.

SIGINT/SIGTERM (or `teardown`, through the state file) stops accepting, lets in-flight
downloads finish for a bounded time, stops dnsmasq, flushes the event log and exits 0.

With `--leader-elect` the parts only one process may run (the leader parts: serve.json, dnsmasq,
chronyd, TFTP, the HTTP Boot responder) run only while this replica holds the Lease; the HTTP server
runs throughout behind a gate that answers 503 on a standby (docs/high-availability.md).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable

from aiohttp import web

from app.events import Event, EventKind, EventLog, SharedEventLog
from app.layout import CHRONY_CONF, TFTP, UEFI_LOADERS
from app.serve.app import BOOT, build_app
from app.serve.boot.service import BootService
from app.serve.boot.services import Services
from app.serve.boot.store import MatchboxStore
from app.serve.cluster.address import Holder, own_address
from app.serve.cluster.elector import Elector
from app.serve.cluster.gate import standby_gate
from app.serve.cluster.lease_api import LeaseApi, connect
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
GUARDIAN = "app.serve.supervise.guardian"  # runs a program that must not outlive serve, even on SIGKILL
ADDRESS_HOLDER = "app.serve.cluster.address"
IP_FREEBIND = 15  # linux/in.h: bind to an address this host does not hold (yet)


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
        self.elector: Elector | None = None  # --leader-elect
        self.address: Holder | None = None  # --service-address, while leading
        self._leading = False  # the leader parts run
        self._parts: list[asyncio.Task] = []  # the leader parts' supervision tasks
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.failure: Exception | None = None

    @property
    def url(self) -> str:
        return f"http://{self.opts.host}:{self.opts.port}"

    async def start(self) -> None:
        if self.opts.election is not None:  # before anything is served: a bad kubeconfig fails here
            self.elector = Elector(self.opts.election, LeaseApi(connect(self.opts.election.kubeconfig),
                                                                self.opts.election.namespace, self.opts.election.name,
                                                                timeout=self.opts.election.renew_deadline))
        elif self.opts.leader:
            claim.claim(self.opts.output)
            self._owns_output = True
            workers.clear(self.opts.output)
        self.store.groups()  # index the groups before the first machine asks, not while it waits
        self.events.open()
        quiet.quiet_exception_handler(asyncio.get_running_loop())
        caps = self.opts.app.limits
        cap = limits.connection_cap(caps.max_connections, limits.raise_nofile())
        app = build_app(self.opts.app, self.services)
        if self.elector is not None:
            app.middlewares.insert(0, standby_gate(self.elector.leading, lambda: self.elector.holder,
                                                   self.opts.election.lease_duration))
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
            if self.opts.service_address and self.opts.host == self.opts.service_address.split("/")[0]:
                # A standby listens on the address it does not hold yet: packets come once it leads. And
                # on its own address of that interface, so that each replica can be probed (/healthz).
                await web.SockSite(self.runner, _freebind_socket(self.opts.host, self.opts.port)).start()
                own = own_address(self.opts.service_interface)
                if own is not None and own != self.opts.host:
                    await web.TCPSite(self.runner, own, self.opts.port, backlog=1024).start()
            else:
                await web.TCPSite(self.runner, self.opts.host, self.opts.port, backlog=1024,
                                  reuse_port=shared_port).start()
        except OSError as exc:
            await self.runner.cleanup()
            self.events.close()
            raise ServeError(f"cannot listen on {self.opts.host}:{self.opts.port}: {exc.strerror} "
                             "(is another server using it? is the address on this host?)") from None
        self._tasks.append(asyncio.create_task(self._follow_events()))
        if self.elector is not None:
            self._tasks.append(asyncio.create_task(self._follow_leadership()))
        elif self.opts.leader:
            await self._start_leader_parts()
        log.info("serving %s (data %s, assets %s%s)", self.url, self.opts.app.data_dir, self.opts.app.assets,
                 f", worker {self.opts.worker + 1} of {self.opts.workers}" if shared_port else "")

    def _boot_exchange_event(self, event: Event) -> None:
        """DHCP and TFTP exchanges (dnsmasq's and the HTTP Boot responder's) take the boot routes' one
        record path: a machine that is no node is at most a capped, throttled discovery."""
        self.boot.record([event])

    async def _follow_leadership(self) -> None:
        """Run the election and keep the leader parts in step with it: started when this replica
        takes the Lease, stopped as soon as it loses it (the one place leadership is acted on)."""
        election = asyncio.create_task(self.elector.run())
        try:
            while True:
                await self.elector.changed()
                if self.elector.leading() and not self._leading:
                    await asyncio.to_thread(self.events.follow, False)  # the last leader's final lines
                    self.events.reopen()  # the file the last leader wrote: it may have compacted it
                    if self.opts.leader:
                        claim.claim(self.opts.output)
                        self._owns_output = True
                    self.events.record(Event(EventKind.LEADING, source="serve", detail={
                        "identity": self.opts.election.identity,
                        "transitions": self.elector.candidate.transitions}))
                    await self._start_leader_parts()
                elif not self.elector.leading() and self._leading:
                    await self._stop_leader_parts(self.elector.candidate.lost_because)
        except ServeError as exc:  # another serve (not of this election) holds the output dir; no address
            self.failure = exc
            self._stop.set()
        finally:
            election.cancel()
            await asyncio.gather(election, return_exceptions=True)

    async def _stop_leader_parts(self, why: str) -> None:
        """Stop what only the leader runs (dnsmasq first: it answers PXE), and say so."""
        self._leading = False
        for child in (self.supervisor, self.chrony):
            if child is not None:
                await child.stop()
        for task in self._parts:
            task.cancel()
        await asyncio.gather(*self._parts, return_exceptions=True)
        self._parts.clear()
        self.supervisor = self.chrony = None
        if self.tftp is not None:
            self.tftp.stop()
            self.tftp = None
        if self.httpboot is not None:
            self.httpboot.stop()
            self.httpboot = None
        if self.address is not None:  # last: the LAN moves to the next leader once nothing answers here
            await self.address.stop()
            self.address = None
        if self.elector is not None and self._owns_output:
            log.warning("stopped serving PXE and the boot API: %s", why)
            self.events.record(Event(EventKind.LEADING_STOPPED, source="serve", message=why,
                                     detail={"identity": self.opts.election.identity}))
            claim.release(self.opts.output)
            self._owns_output = False

    async def _start_leader_parts(self) -> None:
        """What only one process may do: the state file, dnsmasq, TFTP, the HTTP Boot responder, the
        other workers."""
        self._leading = True
        if self.opts.service_address:  # first: dnsmasq binds the addresses the interface has when it starts
            self.address = Holder([sys.executable, "-m", GUARDIAN, "--", sys.executable, "-m", ADDRESS_HOLDER,
                                   self.opts.service_interface, self.opts.service_address],
                                  env={**os.environ, "BOOTSTRAP_GUARDIAN_PARENT": str(os.getpid())})
            try:
                await self.address.start()
            except OSError as exc:
                raise ServeError(str(exc)) from None
        self._write_state()
        self.events.record(Event(EventKind.SERVE_STARTED, source="serve", detail={"url": self.url, "pid": os.getpid()}))
        if self.opts.dhcp == Dhcp.proxy or self.opts.tftp == Tftp.dnsmasq:
            conf = conf_for(self.opts.output, self.opts.dhcp)
            self.supervisor = Supervisor(conf, self._boot_exchange_event, binary=self.opts.dnsmasq_binary,
                                         on_restart=self._count_restart, on_started=self._write_state)
            self._parts.append(asyncio.create_task(self._watch(self.supervisor.run())))
        if (self.opts.output / CHRONY_CONF).is_file():  # generate wrote it: bootstrap.time_server
            self.chrony = Chrony(self.opts.output / CHRONY_CONF, self.events.record, on_restart=self._chrony_restarted)
            self._parts.append(asyncio.create_task(self._watch(self.chrony.run())))
        if self.opts.tftp == Tftp.builtin:
            self.tftp = BuiltinTftp(self.opts.output / TFTP, self.opts.host, self.opts.tftp_port)
            self.tftp.start()
        if self.opts.workers > 1:
            self.pool = workers.Pool(self.opts.to_json(), self.opts.workers)
            self.pool.start()
        if self.opts.dhcp == Dhcp.proxy and self.opts.app.boot.own_tree:
            self.httpboot = await HttpBootResponder.start(self.opts.host, self.url,
                                                          self.opts.app.data_dir / UEFI_LOADERS,
                                                          self._boot_exchange_event)

    async def _follow_events(self) -> None:
        """Take `reinstall` and `wait` events written by other processes (and, with several workers,
        the other workers' events, and publish our counters), within a second."""
        failing = False
        while True:
            await asyncio.sleep(1.0)
            try:
                if self.pool is not None and not self._stop.is_set():
                    self.pool.restart_exited(self._worker_exited)
                # A replica follows every line: the previous leader's last ones may land after it took over.
                await asyncio.to_thread(self.events.follow, self.elector is None)
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
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._stop_leader_parts("serve is stopping")
        if self.elector is not None:  # after dnsmasq stopped: the next leader starts its own at once
            await self.elector.release()
        if self.runner is not None:
            await self.runner.cleanup()  # stops accepting, waits up to shutdown_timeout for requests
        if self._owns_output:
            self.events.record(Event(EventKind.SERVE_STOPPED, source="serve",
                                     message=str(self.failure) if self.failure else ""))
        self.events.close()
        if self._owns_output:  # a serve refused because another runs must not remove that one's state
            claim.release(self.opts.output)

async def serve_forever(opts: ServeSettings, beside: Callable[[Server], Awaitable[None]] | None = None) -> None:
    """Run until SIGINT/SIGTERM; raise ServeError/ChildFailed for what the user must fix. `beside`:
    a task that runs as long as serve does (cluster mode's watch); its failure stops serve."""
    server = Server(opts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    # Made before anything is served: it may hand serve parts the first request must see (cluster
    # mode's install windows).
    task = beside(server) if beside is not None else None
    try:
        await server.start()
        if task is not None:
            server._tasks.append(asyncio.create_task(_beside(server, task)))
            task = None
        _settle_heap()
        await server.wait()
    finally:
        if task is not None:
            task.close()  # serve never started: the task beside it never runs
        await server.shutdown()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if server.failure:
        raise server.failure


async def _beside(server: Server, coro: Awaitable[None]) -> None:
    try:
        await coro
    except Exception as exc:  # a defect in the task beside: stop serving, say what it was
        log.exception("stopping: the task beside serve failed")
        server.failure = ServeError(f"{type(exc).__name__}: {exc}")
        server.stop()


def _freebind_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


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
