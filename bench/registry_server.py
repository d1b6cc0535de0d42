"""The serve app with an image layout, as a bench child: `python bench/registry_server.py ASSETS LAYOUT PORT`.

It builds the app `serve` runs (build_app, no access log, backlog 1024) around AppSettings.images,
without dnsmasq or the rest of serve."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.events import EventLog  # noqa: E402
from app.serve.app import build_app  # noqa: E402
from app.serve.boot.services import Services  # noqa: E402
from app.serve.boot.store import MatchboxStore  # noqa: E402
from app.serve.settings import AppSettings  # noqa: E402


def main() -> None:
    assets, layout, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    (work / "matchbox").mkdir()
    events = EventLog(work)
    events.open()
    services = Services(MatchboxStore(work / "matchbox"), events)
    web.run_app(build_app(AppSettings(data_dir=work / "matchbox", assets=assets, images=layout), services), host="127.0.0.1", port=port, access_log=None, backlog=1024, print=None)


if __name__ == "__main__":
    main()
