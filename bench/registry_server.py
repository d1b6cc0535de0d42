"""The serve app with an image layout, as a bench child: `python bench/registry_server.py ASSETS LAYOUT PORT`.

`serve` has no --images option yet (the CLI wiring is separate work), so this builds the same
aiohttp app `serve` runs (make_app, no access log, backlog 1024) around ServeConfig.images."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.events import EventLog  # noqa: E402
from app.serve.app import make_app
from app.serve.boot.store import Store  # noqa: E402
from app.serve.context import Context, ServeConfig  # noqa: E402


def main() -> None:
    assets, layout, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    (work / "matchbox").mkdir()
    events = EventLog(work)
    events.open()
    ctx = Context(ServeConfig(data_dir=work / "matchbox", assets=assets, images=layout), Store(work / "matchbox"), events)
    web.run_app(make_app(ctx), host="127.0.0.1", port=port, access_log=None, backlog=1024, print=None)


if __name__ == "__main__":
    main()
