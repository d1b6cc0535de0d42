"""While `init` runs: follow the event log and, when a BMC-powered node reports `installed`, point
its next boots at its disk (`after_install`). Runs in its own thread: BMC calls block."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from app.cluster.model import Cluster, Node
from app.events import Event, Follower, Phase
from app.power import PowerError, PowerStatus, after_install, through_bmc

POLL = 1.0


class LogTail:
    """The events appended to a file since the last look (a line still being written waits)."""

    def __init__(self, path: Path, from_end: bool = True):
        self.follower = Follower(path)
        if from_end:
            self.follower.skip_to_end()

    def new(self) -> list[Event]:
        events = (Event.from_json(raw.decode("utf-8", "replace")) for _, raw in self.follower.lines())
        return [e for e in events if e is not None]


def watch_installs(cluster: Cluster, events: Path, stop: threading.Event, say: Callable[[str], None],
                   handle: Callable[[Cluster, Node], PowerStatus | None] = after_install, poll: float = POLL,
                   tail: LogTail | None = None) -> list[str]:
    """Until `stop`: call `handle` once for each BMC-powered node that reports `installed` after
    the watch began (or after `tail`'s position). Returns the names handled."""
    watched = {n.mac: n for n in cluster.nodes if through_bmc(cluster, n)}
    tail, done = tail or LogTail(events), []
    while watched and not stop.is_set():
        for event in tail.new():
            node = watched.get(event.mac)
            if node is None or event.kind != Phase.INSTALLED or node.name in done:
                continue
            done.append(node.name)
            try:
                state = handle(cluster, node)
                said = f": boot override now {state.boot}" if state is not None else ""
                say(f"{node.name} installed; next boots from its disk{said}")
            except PowerError as exc:
                say(f"{exc}; it may PXE-boot again on its next start (the appliance answers installed "
                    "nodes with a local boot while it runs)")
        stop.wait(poll)
    return done
