"""The one "look at most once per N seconds" helper: due before the first look whatever the clock reads."""

from __future__ import annotations

import pytest

from app.recheck import Recheck


@pytest.mark.parametrize("clock_reads", [0.0, 1.0, 59.0, 1e9])
def test_never_looked_is_due_and_a_look_holds_for_the_period(clock_reads):
    now = [clock_reads]
    recheck = Recheck(60.0, clock=lambda: now[0])
    assert recheck.due()
    recheck.done()
    assert not recheck.due()
    now[0] += 59.999
    assert not recheck.due()
    now[0] += 0.001
    assert recheck.due()


def test_a_zero_period_is_always_due():
    recheck = Recheck(0.0, clock=lambda: 5.0)
    recheck.done()
    assert recheck.due()
