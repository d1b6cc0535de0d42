"""The election loop (app/serve/cluster/elector.py) over an in-memory Lease: a stand-in for the API
server with its compare-and-swap on resourceVersion, so that the loop's own behaviour — a hung request
fences the leader, a release clears the holder — is seen without a cluster (tests/k8s/ has the real one)."""

from __future__ import annotations

import asyncio
import threading

from app.serve.cluster.elector import Elector
from app.serve.cluster.leader import Lease, Record
from app.serve.cluster.lease_api import Conflict
from app.serve.settings import LeaseSettings

S = LeaseSettings(identity="a", lease_duration=2, renew_deadline=0.6, retry_period=0.1)


class MemoryLease:
    """One Lease with resourceVersion semantics. `hang` (cleared) makes every call wait on it."""

    def __init__(self):
        self.lease: Lease | None = None
        self.version = 0
        self.hang = threading.Event()
        self.hang.set()
        self.lock = threading.Lock()

    def get(self, default_duration: int) -> Lease | None:
        self.hang.wait()
        return self.lease

    def create(self, record: Record) -> Lease:
        return self._write(record, None)

    def replace(self, record: Record, version: str) -> Lease:
        return self._write(record, version)

    def _write(self, record: Record, version: str | None) -> Lease:
        self.hang.wait()
        with self.lock:
            if (self.lease.version if self.lease else None) != version:
                raise Conflict("changed")
            self.version += 1
            self.lease = Lease(record, str(self.version))
            return self.lease


async def test_a_hung_api_fences_the_leader_and_a_release_clears_the_holder():
    api = MemoryLease()
    elector = Elector(S, api)
    run = asyncio.create_task(elector.run())
    try:
        await asyncio.wait_for(elector.changed(), 10)
        assert elector.leading() and api.lease.record.holder == "a"
        api.hang.clear()  # every request from now on hangs, as to a paused API server
        await asyncio.wait_for(elector.changed(), 10)
        assert not elector.leading()
        assert "renew deadline" in elector.candidate.lost_because
        api.hang.set()  # back: nobody else took it, so it leads again
        await asyncio.wait_for(elector.changed(), 10)
        assert elector.leading()
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    assert await elector.release() is True
    assert api.lease.record.holder == "" and api.lease.record.transitions == 0
    assert not elector.leading()


async def test_a_standby_does_not_release_what_it_does_not_hold():
    api = MemoryLease()
    api.lease = Lease(Record("b", 30, "t", "t", 3), "7")
    api.version = 7
    elector = Elector(S, api)
    run = asyncio.create_task(elector.run())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while elector.holder != "b":  # it has read the Lease: b's, with 30 s to go
            assert asyncio.get_running_loop().time() < deadline, "the elector never read the Lease"
            await asyncio.sleep(0.01)
        assert not elector.leading()
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
    assert await elector.release() is False
    assert api.lease.record.holder == "b" and api.lease.version == "7"
