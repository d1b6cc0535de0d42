"""What the HTTP routes share besides settings: the data dir, the event log, the counters, and the
ways to ask the outside world (neighbour table, clock, randomness). One per process; tests pass
stand-ins for the parts a loopback machine cannot provide (the neighbour table)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.events import EventLog
from app.serve.boot.store import Store
from app.serve.guard.metrics import Metrics
from app.serve.kernel.claims import LinkHistory
from app.serve.kernel.neighbours import link_mac
from app.serve.settings import BootSettings

if TYPE_CHECKING:  # cluster mode's only: file mode never loads the Kubernetes client
    from app.serve.cluster.window_store import MachineWindows

CREDENTIAL_BYTES = 32


def new_credential() -> str:
    return secrets.token_urlsafe(CREDENTIAL_BYTES)


@dataclass
class Services:
    store: Store
    events: EventLog
    metrics: Metrics = field(default_factory=Metrics)
    neighbour: Callable[[str, str | None], str | None] = link_mac  # (sender, our end) -> MAC
    new_credential: Callable[[], str] = new_credential
    clock: Callable[[], float] = time.time
    # With several workers: the other workers' published counters, added to ours on /metrics.
    peer_metrics: Callable[[], list[dict]] | None = None
    links: LinkHistory = field(default_factory=lambda: LinkHistory(BootSettings.window_seconds))
    # Cluster mode: the install windows the Machines hold (cluster/window_store.MachineWindows); None
    # elsewhere, where the event log alone holds them.
    windows: MachineWindows | None = None

    def link_of(self, address: str, ours: str | None) -> tuple[str | None, str | None]:
        """The sender's MAC in the neighbour table, and another MAC it had lately (a claim's mark)."""
        mac = self.neighbour(address, ours)
        return mac, self.links.see(address, mac, time.monotonic())

    def accepted(self, transport) -> None:
        """A new connection: note its sender's MAC now, before any claim made while it is open."""
        peer = transport.get_extra_info("peername") if transport is not None else None
        ours = transport.get_extra_info("sockname") if transport is not None else None
        if isinstance(peer, tuple) and peer:
            address = f"{peer[0]}%{peer[3]}" if len(peer) == 4 and peer[3] else str(peer[0])
            self.link_of(address, ours[0] if isinstance(ours, tuple) else None)
