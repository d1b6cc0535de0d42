"""Cluster mode's watch of what a render reads besides the Machines: the ProvisioningCluster (the rest of
cluster.yaml) and the templates ConfigMap. An edit of either renders the tree again, as a Machine's
spec change does, so a template change takes effect without a restart (docs/cluster-mode.md).

Each target is a collection, or one object of it by name (the ServiceAccount may `get` and `watch` its
ConfigMaps by name, never list them). What exists is read first, so that the objects the first render
already took are not taken as changes; then a watch from there. A resourceVersion seen before is no
change: the server's synthetic ADDED events after a 410 (or for an object created later) count only
when the object is new or its version moved. A failing API server is retried with bounded backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubernetes import client as k8s

from app.serve.cluster.lease_api import Unreachable
from app.serve.cluster.machine_watch import Backoff
from app.serve.cluster.machines_api import MachinesApi

log = logging.getLogger("bootstrap_node.cluster")


@dataclass(frozen=True)
class Target:
    collection: str  # an API path, e.g. /api/v1/namespaces/NS/configmaps
    name: str | None = None  # only this object of it


class Versions:
    """The resourceVersion last seen of each object of one target; says which events are changes."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.version = ""  # where the next watch starts; "" = from the current state

    def take(self, event: dict) -> bool:
        """True when `event` changes what a render reads. An ERROR (410 Gone among them) restarts from
        the current state: the synthetic ADDED events that follow are compared with `seen`."""
        kind = event.get("type")
        meta = (event.get("object") or {}).get("metadata") or {}
        if kind == "ERROR":
            self.version = ""
            return False
        self.version = meta.get("resourceVersion") or self.version
        if kind == "BOOKMARK" or not meta.get("name"):
            return False
        name, version = meta["name"], meta.get("resourceVersion", "")
        if kind == "DELETED":
            return self.seen.pop(name, None) is not None
        before, self.seen[name] = self.seen.get(name), version
        return before != version


class SettingsWatch:
    def __init__(self, client: k8s.ApiClient, namespace: str, targets: list[Target]):
        # One MachinesApi per target: each holds the one open watch its abort() ends.
        self.apis = [(MachinesApi(client, namespace), target) for target in targets]
        self.changes = 0  # changes seen since start (for tests and the log)

    def loops(self) -> list[Callable[[Callable[[], None]], Awaitable[None]]]:
        """One loop per target, for ClusterMode(beside=...), which runs them as long as it runs."""
        return [functools.partial(self._follow, api, target) for api, target in self.apis]

    @staticmethod
    def _prime(api: MachinesApi, target: Target, versions: Versions) -> None:
        """What exists now (taken by the render at start), and the version to watch from."""
        if target.name is None:
            items, versions.version = api.list(target.collection)
        else:
            item = api.read(f"{target.collection}/{target.name}")
            items = [item] if item is not None else []
            versions.version = item["metadata"]["resourceVersion"] if item is not None else ""
        versions.seen = {i["metadata"]["name"]: i["metadata"].get("resourceVersion", "") for i in items}

    async def _follow(self, api: MachinesApi, target: Target, changed: Callable[[], None]) -> None:
        versions, backoff, complained, primed = Versions(), Backoff(), "", False
        loop = asyncio.get_running_loop()
        what = target.collection + (f"/{target.name}" if target.name else "")

        def on_event(event: dict) -> bool:  # in the watch's thread
            if versions.take(event):
                self.changes += 1
                log.info("cluster mode: %s changed: rendering again", what)
                loop.call_soon_threadsafe(changed)
            return event.get("type") != "ERROR"

        while True:
            try:
                if not primed:
                    await asyncio.to_thread(self._prime, api, target, versions)
                    primed = True
                try:
                    await asyncio.to_thread(api.watch, versions.version, on_event, target.collection, target.name)
                except asyncio.CancelledError:
                    api.abort()
                    raise
                backoff.succeeded()
                complained = ""
            except Unreachable as exc:
                versions.version = ""
                pause = backoff.failed()
                if str(exc) != complained:
                    log.warning("cluster mode: watching %s: %s (again in %.1f s)", what, exc, pause)
                    complained = str(exc)
                await asyncio.sleep(pause)
