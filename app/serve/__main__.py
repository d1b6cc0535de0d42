"""`python -m app.serve --worker INDEX OPTIONS_JSON`: one more HTTP worker, started by the leader
(`supervise/workers.py`) with the leader's own options."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys

from app import logs
from app.serve.errors import ServeError
from app.serve.runner import serve_forever
from app.serve.settings import ServeSettings
from app.serve.supervise.guardian import die_with_parent

log = logging.getLogger("bootstrap_node.serve")


def worker_main(argv: list[str]) -> int:
    die_with_parent(int(os.environ.get("BOOTSTRAP_WORKER_PARENT", os.getppid())))
    opts = dataclasses.replace(ServeSettings.from_json(argv[2]), worker=int(argv[1]))
    logs.setup(opts.log_format)
    try:
        asyncio.run(serve_forever(opts))
    except ServeError as exc:
        log.error("worker %d: %s", opts.worker + 1, exc)
        return 1
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    sys.exit(worker_main(sys.argv[1:]))
