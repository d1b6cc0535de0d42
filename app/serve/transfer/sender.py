"""The file sender: an open file as an HTTP response, with a single Range, HEAD, Last-Modified,
If-Modified-Since, If-Unmodified-Since and If-Range, sent with sendfile(2) (zero-copy). Bodies of
`bulk.THRESHOLD` or more go out from a thread of their own (`bulk.py`) so that the boot API never
waits behind them. Used by /assets and by the registry's blobs.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import re
from typing import BinaryIO

from aiohttp import web

from app.serve.transfer import bulk


class ClientGone(ConnectionError):
    """The client went away mid-download: nothing to answer, but the download is still an event."""


async def send_file(request: web.Request, f: BinaryIO, content_type: str,
                    headers: dict[str, str] | None = None) -> web.StreamResponse:
    """An open file as the response, with single Range, HEAD and If-Modified-Since; `headers` are
    added (the registry's digest headers). Shared by /assets and the registry's blobs.

    sendfile(2), not aiohttp's FileResponse: that would stat and open the file in a worker thread
    first; for local files in the page cache that hop costs more than the syscalls it saves, and it
    is most of the time to first byte. Bodies of a MiB or more go out from a thread of their own."""
    st = os.fstat(f.fileno())
    etag = f'"{st.st_size:x}-{st.st_mtime_ns:x}"'
    since = request.if_modified_since
    if since is not None and int(st.st_mtime) <= since.timestamp():
        response = web.StreamResponse(status=304, headers={"ETag": etag})
        response.last_modified = st.st_mtime
        return response
    unmodified = request.if_unmodified_since
    if unmodified is not None and int(st.st_mtime) > unmodified.timestamp():
        raise web.HTTPPreconditionFailed()  # the client's copy is of another version
    headers = {**(headers or {}), "Accept-Ranges": "bytes", "ETag": etag}
    byte_range = _byte_range(request, st.st_size, etag, st.st_mtime)
    start, stop = byte_range or (0, st.st_size)
    if byte_range:
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{st.st_size}"
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    response.content_type = content_type
    response.content_length = stop - start
    response.last_modified = st.st_mtime
    await response.prepare(request)  # sends the headers
    if request.method != "HEAD" and stop > start:
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("client went away")
        try:
            if stop - start >= bulk.THRESHOLD:
                await bulk.sendfile(transport, f, start, stop - start)  # off the API's loop
            else:
                await asyncio.get_running_loop().sendfile(transport, f, start, stop - start)
        except (ConnectionError, RuntimeError) as exc:  # RuntimeError: the transport closed under us
            raise ClientGone(str(exc)) from None
    await response.write_eof()
    return response


def _byte_range(request: web.Request, size: int, etag: str, mtime: float) -> tuple[int, int] | None:
    """[start, stop) of the one Range to send, or None for the whole file (no Range, one we cannot
    parse, or one for another version: If-Range); 416 when it cannot be satisfied."""
    if re.fullmatch(r"\s*bytes\s*=\s*-0+\s*", request.headers.get("Range", "")):
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})  # the last 0 bytes
    try:
        wanted = request.http_range if _range_applies(request, etag, mtime) else slice(None, None)
    except ValueError:
        wanted = slice(None, None)  # a Range we cannot parse is ignored: the whole file
    if wanted.start is None and wanted.stop is None:
        return None
    start = wanted.start if wanted.start is not None else 0
    if start < 0:  # suffix range: the last N bytes
        start = max(size + start, 0)
    stop = min(wanted.stop if wanted.stop is not None else size, size)
    if start >= size or start >= stop:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})
    return start, stop


def _range_applies(request: web.Request, etag: str, mtime: float) -> bool:
    """If-Range: resume only the same version of the file (same ETag, or exactly its Last-Modified);
    otherwise the whole file, so a resumed download never splices two versions."""
    validator = request.headers.get("If-Range")
    if validator is None:
        return True
    if validator.strip().startswith(('"', "W/")):
        return validator.strip() == etag
    try:
        # Last-Modified goes out as the mtime rounded up to a second (aiohttp's rule): compare the same.
        return int(email.utils.parsedate_to_datetime(validator).timestamp()) == math.ceil(mtime)
    except (TypeError, ValueError):
        return False
