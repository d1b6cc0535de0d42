"""How often a cached answer may be reused before the disk is asked again: one helper for every
"look at most once per N seconds" in the appliance.

The first look is always due, whatever the clock reads. A monotonic clock starts near the machine's
boot, so a "last looked" of 0.0 would make every cache on a machine up for less than its period
answer from an empty index: the state before any look is `None`, never a number.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


class Recheck:
    """Says whether `period` seconds have passed since the last look (never looked: yes)."""

    __slots__ = ("period", "_clock", "_last")

    def __init__(self, period: float, clock: Clock = time.monotonic):
        self.period = period
        self._clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        return self._last is None or self._clock() - self._last >= self.period

    def done(self) -> None:
        """A look was made now."""
        self._last = self._clock()

    def forget(self) -> None:
        """The next look is due at once (someone knows the disk just changed)."""
        self._last = None
