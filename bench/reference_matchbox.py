"""What Matchbox does per request, in Python: list groups/, read and parse every group, sort,
select, read the profile and the config. The reference for the boot-API benchmark; it uses the same
label parsing and matching as bootstrap-node so only the per-request re-reading differs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.serve.boot.labels import parse_labels  # noqa: E402
from app.serve.boot.render import ignition_bytes, ipxe_script  # noqa: E402
from app.serve.boot.store import parse_group  # noqa: E402

ROOT = Path(sys.argv[1])


def select(labels):
    groups = []
    for entry in os.scandir(ROOT / "groups"):
        group = parse_group(json.loads(Path(entry.path).read_bytes()), entry.name)
        if group:
            groups.append(group)
    groups.sort(key=lambda g: g.sort_key, reverse=True)
    group = next((g for g in groups if g.matches(labels)), None)
    if group is None:
        return None, None
    return group, json.loads((ROOT / "profiles" / f"{group.profile}.json").read_bytes())


async def ipxe(request):
    group, profile = select(parse_labels(request.rel_url.raw_query_string))
    if group is None:
        raise web.HTTPNotFound()
    return web.Response(text=ipxe_script(profile["boot"]))


async def ignition(request):
    group, profile = select(parse_labels(request.rel_url.raw_query_string))
    if group is None:
        raise web.HTTPNotFound()
    name = profile["ignition_id"]
    return web.Response(body=ignition_bytes(name, (ROOT / "ignition" / name).read_bytes(), {}),
                        content_type="application/json")


app = web.Application()
app.router.add_get("/ipxe", ipxe)
app.router.add_get("/ignition", ignition)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), access_log=None, print=None)
