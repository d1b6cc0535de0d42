"""/assets/: static files under one root, never outside it (`app.confine`), as Matchbox serves its
assets directory: a directory answers with its index.html or a listing that names only entries
inside the root; files go out through the file sender.
"""

from __future__ import annotations

import html
import mimetypes
import os
import stat
import urllib.parse
from pathlib import Path

from aiohttp import web

from app.confine import confine
from app.serve.transfer.sender import send_file

mimetypes.add_type("application/octet-stream", ".raw")
mimetypes.add_type("application/octet-stream", ".vmlinuz")
mimetypes.add_type("application/x-bzip2", ".bz2")
mimetypes.add_type("text/plain", ".sig")
mimetypes.add_type("text/plain", ".DIGESTS")


async def serve_asset(request: web.Request, root: Path | None) -> web.StreamResponse:
    if root is None:
        raise web.HTTPNotFound()
    raw = request.raw_path.split("?", 1)[0][len("/assets/"):]
    target = confine(root, raw)
    try:
        mode = target.stat().st_mode if target is not None else None
    except OSError:
        mode = None
    if mode is None:
        raise web.HTTPNotFound()
    if stat.S_ISDIR(mode):
        return _directory(request, root, target, raw)
    if raw.endswith("/"):
        raise web.HTTPMovedPermanently(location=request.path.rstrip("/"))
    if not stat.S_ISREG(mode):
        raise web.HTTPNotFound()
    content_type, _ = mimetypes.guess_type(target.name)
    if target.name.endswith(".gz"):
        # A .cpio.gz is a file to hand over as is, not a gzip-encoded body to unpack.
        content_type = "application/gzip"
    try:
        f = target.open("rb")
    except OSError:
        raise web.HTTPNotFound() from None
    with f:
        return await send_file(request, f, content_type or "application/octet-stream")


def _directory(request: web.Request, root: Path, target: Path, raw: str) -> web.StreamResponse:
    """A directory: its index.html, or a listing; always addressed with a trailing slash."""
    if raw and not raw.endswith("/"):
        raise web.HTTPMovedPermanently(location=request.path + "/")
    index = target / "index.html"
    if index.is_file():
        return web.FileResponse(index)
    return _listing(target, root)


def _listing(directory: Path, root: Path) -> web.Response:
    """Entries of a directory, without those whose real path leaves the root (symlinks outside)."""
    base = os.path.relpath(directory, os.path.realpath(root))
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(directory)
                   if confine(root, urllib.parse.quote(os.path.join(base, e.name))) is not None)
    rows = "".join(f'<a href="{urllib.parse.quote(n)}">{html.escape(n)}</a>\n' for n in names)
    return web.Response(text=f"<pre>\n{rows}</pre>\n", content_type="text/html")
