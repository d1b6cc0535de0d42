"""Alerts as the event log keeps them: a count per reason, the most recent ones, and for each reason
its first and last sender (address, neighbour MAC, route, node, time). Under a flood of repeats the
first sender is likely the attacker; the last may be the victim, whose own requests were refused."""

from __future__ import annotations

from collections import Counter, deque

from app.events.model import Event

RECENT_ALERTS = 50


class Alerts:
    def __init__(self) -> None:
        self.counts: Counter = Counter()  # reason -> count
        self.recent: deque[Event] = deque(maxlen=RECENT_ALERTS)
        self.senders: dict[str, tuple[dict, dict]] = {}  # reason -> (first, last) sender

    def clear(self) -> None:
        self.counts.clear()
        self.recent.clear()
        self.senders.clear()

    def add(self, event: Event) -> None:
        reason = str(event.detail.get("reason", "alert"))
        self.counts[reason] += 1
        self.recent.append(event)
        sender = {"remote": str(event.detail.get("remote", "")), "link_mac": str(event.detail.get("link_mac", "")),
                  "route": str(event.detail.get("route", "")), "node": event.node or event.mac, "ts": event.ts}
        first = self.senders.get(reason, (sender, sender))[0]
        self.senders[reason] = (first, sender)

    def summary(self) -> dict:
        """What a compaction keeps of them (`restore` reads it back)."""
        return {"counts": dict(self.counts), "senders": {reason: list(pair) for reason, pair in self.senders.items()}}

    def restore(self, detail: dict) -> None:
        counts, senders = detail.get("counts", {}), detail.get("senders")
        self.counts.update({str(k): int(v) for k, v in (counts.items() if isinstance(counts, dict) else ())})
        for reason, pair in (senders.items() if isinstance(senders, dict) else ()):
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(s, dict) for s in pair):
                self.senders[str(reason)] = (pair[0], pair[1])
