"""Cluster mode's write-then-serve (app/serve/boot/service.py `answer`, app/serve/cluster/window_store.py):
two replicas, each with its own event log, over one Machine. What a decision changes of the install
reaches the Machine before anything goes out; a replica with an empty log takes over from the Machine
alone; two writers from the same view cannot both serve.

`MemoryMachines` stands in for the API server's status subresource (merge patch, resourceVersion
precondition, 409): tests/k8s/test_cluster_windows_real.py runs the same against the real one."""

from __future__ import annotations

import asyncio
import copy
import threading

from app.events import Phase
from app.serve.boot import policy
from app.serve.boot.service import NOT_WRITTEN
from app.serve.cluster.lease_api import Unreachable
from app.serve.cluster.machines_api import Conflict
from tests.support.replicas import ADDRESS, MAC, ignition, ipxe, replica, report
from tests.support.serve import credential_in


def merge(target: dict, patch: dict) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


class MemoryMachines:
    """Stands in for one Machine's status subresource on the API server (no server in a unit test)."""

    def __init__(self):
        self.obj = {"metadata": {"name": "cp-1", "resourceVersion": "1", "generation": 1},
                    "spec": {"mac": MAC}, "status": {}}
        self.down = False
        self._lock = threading.Lock()  # the server checks the version and writes as one step

    def patch_status(self, name: str, status: dict, version: str = "") -> dict:
        if self.down:
            raise Unreachable("HTTP 503 on PATCH: the API server is down")
        with self._lock:
            meta = self.obj["metadata"]
            if version and version != meta["resourceVersion"]:
                raise Conflict("HTTP 409 on PATCH: the object has been modified")
            merge(self.obj["status"], status)
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
            return copy.deepcopy(self.obj)

    def get(self, name: str) -> dict:
        return copy.deepcopy(self.obj)

    @property
    def window(self) -> dict:
        return self.obj["status"].get("installWindow") or {}


async def test_the_window_is_on_the_machine_before_the_config_goes_out(tmp_path):
    api = MemoryMachines()
    leader = replica(tmp_path, "a", api)
    assert "kernel " in (await ipxe(leader)).body
    assert api.window["address"] == ADDRESS and not api.window["installServed"]
    api.down = True
    reply = await ignition(leader)
    # Not written, not served: no config, no credential, and the log does not say it went out.
    assert (reply.status, reply.body) == (503, NOT_WRITTEN)
    assert not leader.events.state(MAC).window.install_served
    api.down = False
    reply = await ignition(leader)
    assert reply.status == 200
    assert api.window["installServed"] and api.window["installCredentialHash"] == policy.digest(
        credential_in(reply.body))


async def test_a_replica_with_an_empty_log_takes_over_the_install_from_the_machine(tmp_path):
    api = MemoryMachines()
    old = replica(tmp_path, "old", api)
    await ipxe(old)
    credential = credential_in((await ignition(old)).body)
    new = replica(tmp_path, "new", api)  # its watch brought the Machine; its log never saw cp-1
    assert new.events.state(MAC) is None
    assert (await ignition(new)).status == 403  # the install config went out once: not again
    assert (await ignition(new, "guess", os="installed")).status == 403
    assert (await report(new, "installing", "guess")).status == 403
    final = await ignition(new, credential, os="installed")
    assert final.status == 200 and api.window["finalServed"]
    assert (await ignition(new, credential, os="installed")).status == 403  # once
    assert (await report(new, "installed", credential)).status == 200
    assert api.window["installed"] and "opened" not in api.window  # closed, its callback credential kept
    callback = credential_in(final.body)
    assert api.window["callbackCredentialHash"] == policy.digest(callback)
    assert (await report(new, "joined", callback)).status == 200
    assert new.events.state(MAC).phase == Phase.JOINED
    assert "exit" in (await ipxe(new)).body  # installed: it boots from its disk


async def test_two_writers_from_the_same_view_serve_once(tmp_path):
    api = MemoryMachines()
    first = replica(tmp_path, "a", api)
    await ipxe(first)
    second = replica(tmp_path, "b", api)  # both think they lead, both see the open, unused window
    replies = await asyncio.gather(ignition(first), ignition(second))
    assert sorted(r.status for r in replies) == [200, 403], replies
    assert api.window["installServed"]
    served = [r for r in replies if r.status == 200]
    assert api.window["installCredentialHash"] == policy.digest(credential_in(served[0].body))


async def test_a_second_machine_with_the_same_mac_stops_its_installs_and_changes_nothing(tmp_path):
    api = MemoryMachines()
    leader = replica(tmp_path, "a", api)
    # Accepted by the server's schema, refused by `validate`: which one's window would it be?
    leader.known["cp-1-again"] = leader.known["cp-1"]
    reply = await ipxe(leader)
    assert (reply.status, reply.body) == (503, NOT_WRITTEN)
    assert api.window == {} and leader.events.state(MAC) is None
