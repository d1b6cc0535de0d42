"""What a standby's HTTP server answers: 503 and Retry-After for everything but health.

A standby holds no Lease, so it may decide nothing: it hands out no config (no secret), opens no
install window and writes no event. It still listens, so that a probe can tell a live standby from a
dead replica (`/healthz`: 200 on both) and the leader from a standby (`/readyz`: 200 on the leader
only, which is what a Kubernetes Service's readiness wants). Leadership is asked per request, so a
leader whose renew deadline passed refuses at once, even before its election loop notices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from aiohttp import web

HEALTH, READY = "/healthz", "/readyz"


def standby_gate(leading: Callable[[], bool], holder: Callable[[], str], retry_after: float):
    """The middleware; `holder` names the replica the Lease named when last read ("" if none)."""
    wait = str(max(1, math.ceil(retry_after)))

    @web.middleware
    async def gate(request: web.Request, handler):
        now_leading = leading()
        if request.path == HEALTH:
            return web.Response(text="leader\n" if now_leading else "standby\n")
        if request.path == READY:
            return (web.Response(text="leader\n") if now_leading
                    else web.Response(status=503, text="standby\n", headers={"Retry-After": wait}))
        if now_leading:
            return await handler(request)
        named = holder()
        who = f"; {named} holds the Lease" if named else "; no replica holds the Lease yet"
        return web.Response(status=503, text=f"standby: this replica does not serve{who}\n",
                            headers={"Retry-After": wait})

    return gate
