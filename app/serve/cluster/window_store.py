"""Cluster mode's install windows in the Machines (docs/high-availability.md, "Install windows across a
takeover"): read from the watch's view of them, written to their status subresource before the boot
service answers (write-then-serve). The boot service holds one as `Services.windows`; the encoding
and the merge are `windows.py`'s.

Every replica watches, so a standby has each Machine's window when it takes over. Only the leader
writes (the standby gate lets no boot request reach a standby), and every write names the
resourceVersion its decision was made from: a replica deciding from a view that is behind the
server's (its watch is late, or another replica wrote first) gets 409, reads the Machine again and
decides again, so "served once" holds across replicas without any lock between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from app.events.model import Event, NodeState
from app.serve.cluster.lease_api import Unreachable
from app.serve.cluster.machine_watch import MachineView
from app.serve.cluster.machines_api import Conflict, MachinesApi
from app.serve.cluster.windows import (
    Saved,
    WindowConflict,
    WindowNotSaved,
    after,
    decode,
    encode,
    merged,
    status_patch,
)


class MachineWindows:
    def __init__(self, known: Callable[[], dict[str, MachineView]], learn: Callable[[dict], bool], api: MachinesApi,
                 window_seconds: float):
        """`known`: the watch's Machines by name (ClusterMode.known); `learn`: fold in a Machine a
        write or a read returned (ClusterMode.learn)."""
        self.known, self.learn, self.api, self.window_seconds = known, learn, api, window_seconds

    def saved(self, mac: str) -> Saved | None:
        """`mac`'s Machine as the view holds it; None when no Machine, or more than one, has that MAC
        (the server accepts a second one, `validate` refuses it: neither is written to)."""
        found = [(name, view) for name, view in self.known().items() if view.mac == mac]
        if len(found) != 1:
            return None
        name, view = found[0]
        return decode(name, view.version, view.status, self.window_seconds)

    def state(self, mac: str, local: NodeState | None) -> NodeState | None:
        """The policy's input for `mac`: the event log's state with the Machine's install in it."""
        return merged(mac, local, self.saved(mac))

    async def persist(self, mac: str, before: NodeState | None, events: list[Event]) -> None:
        """Write what `events` change of `mac`'s install to its Machine, from the version `before` was
        read at. Returns once the server holds it (or when nothing changes). WindowConflict: the
        Machine moved on (it has been read again: decide again); WindowNotSaved: not written."""
        wanted = encode(after(mac, before, events), self.window_seconds)
        if wanted == encode(before, self.window_seconds):
            return
        saved = self.saved(mac)
        if saved is None or not saved.version:
            raise WindowNotSaved(f"not exactly one Machine with MAC {mac} in this replica's view")
        try:
            written = await asyncio.to_thread(self.api.patch_status, saved.name, status_patch(saved.stored, wanted),
                                              saved.version)
        except Conflict:
            try:
                self.learn(await asyncio.to_thread(self.api.get, saved.name))
            except Unreachable:
                pass  # the watch brings it; the next attempt decides from that
            raise WindowConflict(f"Machine {saved.name} changed since it was read") from None
        except Unreachable as exc:
            raise WindowNotSaved(f"writing Machine {saved.name}'s install window: {exc}") from None
        self.learn(written)
