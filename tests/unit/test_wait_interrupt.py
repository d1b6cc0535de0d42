"""Ctrl-C during `wait`: the command returns 130 even when the step in flight does not stop."""
from __future__ import annotations

import _thread
import threading

from app.cli import wait as wait_cli
from app.exitcodes import ExitCode


def test_ctrl_c_returns_even_when_the_step_in_flight_hangs(monkeypatch):
    monkeypatch.setattr(wait_cli, "INTERRUPT_GRACE", 0.2)
    started, never = threading.Event(), threading.Event()
    stop = threading.Event()

    def hung_step():  # e.g. one API request that ignores `stop` until its own timeout
        started.set()
        never.wait(600)

    def ctrl_c():
        started.wait(10)
        _thread.interrupt_main()  # KeyboardInterrupt in the main thread, as a SIGINT gives
    threading.Thread(target=ctrl_c, daemon=True).start()
    outcome = wait_cli._in_thread(hung_step, stop)
    never.set()
    assert outcome.code == ExitCode.INTERRUPTED and stop.is_set()
