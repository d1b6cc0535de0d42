"""asyncio's own error reports, quieted: running out of file descriptors is one log line a while,
not a storm."""

from __future__ import annotations

import asyncio
import logging
import time

from app.recheck import Clock
from app.serve.guard.throttle import Throttle

log = logging.getLogger("bootstrap_node.limits")
QUIET_SECONDS = 10.0


def quiet_exception_handler(loop: asyncio.AbstractEventLoop, clock: Clock = time.monotonic) -> None:
    """asyncio reports every failed accept (EMFILE) and every aborted transport: say each kind once
    per QUIET_SECONDS, with how many were not said."""
    throttle = Throttle(QUIET_SECONDS)
    unsaid: dict[str, int] = {}

    def handle(loop, context) -> None:
        message = str(context.get("message", "error"))
        if not throttle.allow((message,), clock()):
            unsaid[message] = unsaid.get(message, 0) + 1
            return
        extra = f" ({unsaid.pop(message)} more like it)" if unsaid.get(message) else ""
        exc = context.get("exception")
        log.warning("%s%s%s", message, f": {exc}" if exc else "", extra)

    loop.set_exception_handler(handle)
