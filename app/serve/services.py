"""What the HTTP routes share besides settings: the data dir, the event log, the counters, and the
ways to ask the outside world (neighbour table, clock, randomness). One per process; tests pass
stand-ins for the parts a loopback machine cannot provide (the neighbour table)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.events import EventLog
from app.serve.boot.store import Store
from app.serve.guard.metrics import Metrics
from app.serve.kernel.neighbours import link_mac

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
