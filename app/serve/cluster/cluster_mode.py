"""`serve --from-cluster`: the Machines are the store (docs/pivot.md, "Cluster mode").

Three loops beside serve's own:
- watch: list the Machines, then watch them from the list's resourceVersion; 410 Gone (or any
  ERROR event) lists again; a failing API server is retried with bounded backoff. Every replica
  watches, so a standby's tree is current when it takes over.
- render: a change (machine_watch.apply_event) asks for a new tree; requests are coalesced, and the
  rendering itself is the caller's `rebuild` (the CLI's: the cluster's objects exported the way
  `unpivot` does, then `generate`), which switches the output tree old-or-new. A rebuild that fails
  (a Machine the cluster model refuses) is logged and the last good tree keeps being served.
- status (leader only): reinstalls the spec asks for go into the event log; each Machine's phase,
  timeline and last error from the event log, as far as they changed since this replica last was a standby, go to
  its status subresource, with an Event per phase change.
  Coalesced to one round per `status_interval`, at most `status_limit` PATCHes and `event_limit`
  Events a round.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from app.serve.cluster.lease_api import Unreachable
from app.serve.cluster.machine_watch import (
    Act,
    Backoff,
    Coalescer,
    MachineView,
    apply_event,
    due_reinstalls,
    fold_in,
    resource_version,
    status_patches,
)
from app.serve.cluster.machines_api import Conflict, Gone, MachinesApi

log = logging.getLogger("bootstrap_node.cluster")


class RebuildFailed(Exception):
    """The cluster's objects do not make a tree (the message says why); the last good tree stays."""


@dataclass
class Hooks:
    """What cluster mode asks of the serve it runs in."""

    rebuild: Callable[[], str]  # render the tree from the API (blocking); a summary line; RebuildFailed
    refresh: Callable[[], None]  # make the store look at the tree now
    leading: Callable[[], bool]  # may this replica write (status, events, reinstalls)?
    node_state: Callable[[str], tuple]  # MAC -> machine_watch.Report (phase, last error, history) from the log
    reinstall: Callable[[str, str], None]  # (MAC, name): the node installs again on its next boot
    identity: str = "serve"


class ClusterMode:
    def __init__(self, api: MachinesApi, hooks: Hooks, render_interval: float = 0.5, status_interval: float = 1.0,
                 status_limit: int = 20, event_limit: int = 10, clock: Callable[[], float] = time.monotonic,
                 beside: Sequence[Callable[[Callable[[], None]], Awaitable[None]]] = ()):
        self.api, self.hooks, self.clock = api, hooks, clock
        self.beside = beside  # other watches (settings_watch), each given the way to ask for a render
        self.known: dict[str, MachineView] = {}
        self.uids: dict[str, str] = {}
        self.version = ""
        self.render = Coalescer(render_interval)
        self.status_interval, self.status_limit, self.event_limit = status_interval, status_limit, event_limit
        self._render_asked = asyncio.Event()
        self._relist = False
        self.renders = 0  # trees switched since start (for tests and the log)
        self.rounds = 0  # status rounds done as leader
        # The log's states when this replica last was a standby: what a term writes must differ from them.
        self._baseline: dict[str, tuple] = {}

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._render()),
                 asyncio.create_task(self._status()), *(asyncio.create_task(b(self._ask_render)) for b in self.beside)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- watch -------------------------------------------------------------------------------------
    async def _watch(self) -> None:
        backoff, complained = Backoff(), ""
        loop = asyncio.get_running_loop()

        def handed_over(event: dict) -> bool:  # in the watch's thread
            loop.call_soon_threadsafe(self._take, event)
            return event.get("type") != "ERROR"

        while True:
            try:
                if not self.version or self._relist:
                    items, self.version = await asyncio.to_thread(self.api.list)
                    self._relist = False
                    self._replace(items)
                try:
                    await asyncio.to_thread(self.api.watch, self.version, handed_over)
                except asyncio.CancelledError:
                    self.api.abort()
                    raise
                backoff.succeeded()
                complained = ""
            except Gone:
                self._relist = True
            except Unreachable as exc:
                self._relist = True
                pause = backoff.failed()
                if str(exc) != complained:
                    log.warning("cluster mode: %s (again in %.1f s)", exc, pause)
                    complained = str(exc)
                await asyncio.sleep(pause)

    def _replace(self, items: list[dict]) -> None:
        """A fresh list: the known set is exactly it (what was deleted while nobody watched is gone)."""
        fresh = {m["metadata"]["name"]: MachineView.of(m) for m in items}
        self.uids = {m["metadata"]["name"]: m["metadata"].get("uid", "") for m in items}
        if {n: v.generation for n, v in fresh.items()} != {n: v.generation for n, v in self.known.items()}:
            self._ask_render()
        self.known = fresh

    def _take(self, event: dict) -> None:
        act = apply_event(self.known, event)
        if act is Act.RELIST:
            self._relist = True
            return
        self.version = resource_version(event) or self.version
        meta = (event.get("object") or {}).get("metadata", {})
        if meta.get("name") and meta.get("uid"):
            self.uids[meta["name"]] = meta["uid"]
        if act is Act.RENDER:
            self._ask_render()

    def learn(self, machine: dict) -> bool:
        """A Machine a write or a read returned, taken ahead of its watch event (machine_watch.fold_in)."""
        return fold_in(self.known, machine)

    def _ask_render(self) -> None:
        self.render.mark()
        self._render_asked.set()

    # -- render ------------------------------------------------------------------------------------
    async def _render(self) -> None:
        while True:
            await self._render_asked.wait()
            self._render_asked.clear()
            wait = self.render.wait(self.clock())
            if wait is None:
                continue
            if wait:
                await asyncio.sleep(wait)  # what arrives meanwhile rides along in this render
            self.render.done(self.clock())
            try:
                summary = await asyncio.to_thread(self.hooks.rebuild)
            except RebuildFailed as exc:
                log.error("cluster mode: not rendered, still serving the last good tree: %s", exc)
                continue
            self.hooks.refresh()
            self.renders += 1
            log.info("cluster mode: %s", summary)

    # -- status (leader only) ----------------------------------------------------------------------
    async def _status(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            if not self.hooks.leading():
                # A standby's log does not change: what it holds now is what it holds when it takes over.
                self._baseline = {v.mac: self.hooks.node_state(v.mac) for v in self.known.values()}
            elif self.known:
                try:
                    await self._status_round()
                    self.rounds += 1
                except Unreachable as exc:
                    log.warning("cluster mode: status not written: %s", exc)

    async def _status_round(self) -> None:
        for name, view in due_reinstalls(self.known):
            log.info("cluster mode: Machine %s asks for reinstall %d: %s installs again", name, view.reinstall, name)
            self.hooks.reinstall(view.mac, name)
        # Only what this replica's log learnt while leading: what it held before may be older than what
        # another leader wrote meanwhile (a phase its reinstall cleared).
        states = {v.mac: state for v in self.known.values()
                  if (state := self.hooks.node_state(v.mac)) != self._baseline.get(v.mac)}
        events = 0
        seen = dict(self.known)  # the views the patches are computed from (the watch moves on meanwhile)
        for name, patch in status_patches(seen, states, self.status_limit).items():
            if not self.hooks.leading():
                break  # deposed mid-round (each write may wait out its timeout): the rest is the next leader's
            try:
                # Onto the version the patch was computed from: a deposed leader's late write (delivered
                # after the next leader opened a window) must not clear that window or bring back a
                # phase. A 409 is decided again next round from the watch's view (a due reinstall is
                # then recorded again: the same reset of the same node).
                written = await asyncio.to_thread(self.api.patch_status, name, patch, seen[name].version)
            except Conflict:
                continue
            view = self.known.get(name)
            if view is None:
                continue
            if not (isinstance(written, dict) and self.learn(written)):
                self.known[name] = dataclasses.replace(
                    view, phase=(patch["phase"] or "") if "phase" in patch else view.phase,
                    error=(patch["lastError"] or "") if "lastError" in patch else view.error,
                    observed=patch.get("observedReinstall", view.observed),
                    status={k: v for k, v in {**view.status, **patch}.items() if v is not None})
            note = _note(patch)
            if note is not None and events < self.event_limit:
                events += 1
                reason, text, warning = note
                await asyncio.to_thread(self.api.event, name, self.uids.get(name, ""), reason, text, warning,
                                        self.hooks.identity)


def _note(patch: dict) -> tuple[str, str, bool] | None:
    """(reason, note, warning) of the Event a status change is worth, or None."""
    if patch.get("lastError"):
        return "Failed", patch["lastError"], True
    if patch.get("phase"):
        phase = patch["phase"]
        return "".join(part.capitalize() for part in phase.split("-")), f"phase {phase}", False
    return None
