"""At most one of a kind per period: keeps repetitive junk (refusals, bad callbacks, unknown MACs,
asyncio's error reports, restarts of a crashing worker) from filling a log while every occurrence
is still counted.

It is `app.recheck.Recheck` per key, with the same rule: a key never seen is always allowed,
whatever the clock reads. Keys are bounded: past `max_keys` the oldest are forgotten.
"""

from __future__ import annotations

from collections import OrderedDict


class Throttle:
    def __init__(self, period: float, max_keys: int = 4096):
        self.period, self.max_keys = period, max_keys
        self._last: OrderedDict[tuple, float] = OrderedDict()

    def allow(self, key: tuple, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:  # bounded memory: forget the oldest keys
            self._last.popitem(last=False)
        return True
