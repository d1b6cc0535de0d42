"""The election loop: reads and writes the Lease on its schedule and fences on time, whatever the
network does. The decisions are `leader.Candidate`'s; this module only times and carries them.

Each attempt runs in a thread (the client is synchronous) and is awaited at most until the renew
deadline: a request that hangs (an API server that stopped answering, a dropped route) cannot keep
a leader leading. Whoever needs to know (serve's runner) waits on `changed()` and asks `leading()`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable

from app.serve.cluster.leader import Act, Candidate, Role, released, rfc3339
from app.serve.cluster.lease_api import Conflict, LeaseApi, Unreachable
from app.serve.settings import LeaseSettings

log = logging.getLogger("bootstrap_node.leader")


def utc_now() -> str:
    return rfc3339(dt.datetime.now(dt.UTC))


class Elector:
    def __init__(self, settings: LeaseSettings, api: LeaseApi, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], str] = utc_now):
        self.settings, self.api, self.clock, self.wall = settings, api, clock, wall
        self.candidate = Candidate(settings.identity, settings)
        self.holder = ""  # who the Lease named when last read (for a standby's answers)
        self._changed = asyncio.Event()
        self._attempt: asyncio.Future | None = None
        self._attempt_began = 0.0
        self._abandoned = -1.0  # when the round the fence gave up on began: its late success grants nothing
        self._complained = ""

    def leading(self) -> bool:
        return self.candidate.leading(self.clock())

    async def changed(self) -> None:
        """Return once the role changed since the last call (at once if it has)."""
        await self._changed.wait()
        self._changed.clear()

    async def run(self) -> None:
        """Campaign, lead, fence, forever (until cancelled)."""
        while True:
            role = self.candidate.role
            if self._attempt is None:  # one request at a time: a hung one is waited out as a standby
                self._attempt_began = self.clock()
                self._attempt = asyncio.ensure_future(asyncio.to_thread(self._try, self._attempt_began))
            try:
                await asyncio.wait_for(asyncio.shield(self._attempt), self._budget())
            except TimeoutError:  # only a leader has a budget: fenced below, the request ends in the background
                self._abandoned = self._attempt_began
            else:
                self._attempt = None
            self.candidate.fence(self.clock())
            if self.candidate.role is not role:
                self._announce()
            await asyncio.sleep(self._pause())

    def _budget(self) -> float | None:
        if self.candidate.role is Role.LEADER:
            return max(0.0, self.candidate.deadline - self.clock())
        return None

    def _pause(self) -> float:
        """Until the next attempt: the retry period, or less if the fence would pass before it."""
        pause = self.settings.retry_period
        if self.candidate.role is Role.LEADER:
            pause = min(pause, max(0.0, self.candidate.deadline - self.clock()))
        return pause

    def _try(self, began: float) -> None:
        """One read-decide-write round, in a thread. Failures are logged once per distinct cause."""
        candidate = self.candidate
        try:
            lease = self.api.get(self.settings.lease_duration)
            self.holder = lease.record.holder if lease else ""
            decision = candidate.read(lease, self.clock(), self.wall())
            if decision.act is Act.WAIT:
                return
            if decision.act is Act.CREATE:
                self.api.create(decision.write)
            else:
                self.api.replace(decision.write, lease.version)
            self.holder = self.settings.identity
            # A round abandoned at the fence grants nothing even if it got through: the next round
            # finds the Lease still ours and renews it with a fresh deadline.
            candidate.wrote(began != self._abandoned, began, self.clock())
            self._complained = ""
        except Conflict:
            candidate.wrote(False, began, self.clock(), conflict=True)
        except Unreachable as exc:
            candidate.wrote(False, began, self.clock())
            if str(exc) != self._complained:
                log.warning("leader election: %s", exc)
                self._complained = str(exc)

    def _announce(self) -> None:
        if self.candidate.role is Role.LEADER:
            log.info("leading: Lease %s/%s names %s (transitions %d)", self.settings.namespace, self.settings.name,
                     self.settings.identity, self.candidate.transitions)
        else:
            log.warning("stopped leading: %s", self.candidate.lost_because)
        self._changed.set()

    async def release(self) -> bool:
        """On a clean stop, after the leader's work stopped: clear holderIdentity so that a standby
        takes over at its next retry instead of waiting out the lease. True if released."""
        if self._attempt is not None:
            await asyncio.wait([self._attempt], timeout=self.settings.renew_deadline)
        was_leading = self.leading()
        self.candidate.role, self.candidate.deadline = Role.STANDBY, 0.0
        if not was_leading:
            return False
        try:
            return await asyncio.wait_for(asyncio.to_thread(self._release), self.settings.renew_deadline)
        except TimeoutError:
            log.warning("leader election: releasing the Lease timed out: a standby takes over when it expires")
            return False

    def _release(self) -> bool:
        try:
            lease = self.api.get(self.settings.lease_duration)
            if lease is None or lease.record.holder != self.settings.identity:
                return False
            self.api.replace(released(lease.record, self.wall()), lease.version)
        except (Conflict, Unreachable) as exc:
            log.warning("leader election: could not release the Lease (%s): a standby takes over when it "
                        "expires", exc)
            return False
        log.info("released Lease %s/%s", self.settings.namespace, self.settings.name)
        return True
