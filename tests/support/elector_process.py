"""One replica of the election as a real OS process, for tests/k8s/test_leader_real.py:
`python -m tests.support.elector_process KUBECONFIG IDENTITY NAMESPACE NAME LEASE RENEW RETRY`.

It runs serve's own `Elector` against the real API server and prints one JSON line per change of
role: {"role", "at" (CLOCK_MONOTONIC, comparable across processes of this machine), "began" (when the
last successful round began: the fence is began + renew deadline), "why"}. SIGTERM: release the Lease
as serve does on a clean stop, print {"released": bool}, exit 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from app.serve.cluster.elector import Elector
from app.serve.cluster.lease_api import LeaseApi, connect
from app.serve.settings import LeaseSettings


def say(**data) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def main(argv: list[str]) -> None:
    kubeconfig, identity, namespace, name, lease, renew, retry = argv
    settings = LeaseSettings(identity=identity, namespace=namespace, name=name, lease_duration=int(lease),
                             renew_deadline=float(renew), retry_period=float(retry), kubeconfig=Path(kubeconfig))
    assert settings.problems() == [], settings.problems()
    elector = Elector(settings, LeaseApi(connect(settings.kubeconfig), namespace, name, settings.renew_deadline))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    election = asyncio.create_task(elector.run())
    say(role="started", at=time.monotonic())

    async def report() -> None:
        while True:
            await elector.changed()
            candidate = elector.candidate
            say(role="leader" if elector.leading() else "standby", at=time.monotonic(),
                deadline=candidate.deadline, why=candidate.lost_because, transitions=candidate.transitions)

    reporter = asyncio.create_task(report())
    await stop.wait()
    election.cancel()
    reporter.cancel()
    await asyncio.gather(election, reporter, return_exceptions=True)
    say(released=await elector.release(), at=time.monotonic())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
