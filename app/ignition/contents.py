"""Contents as Butane embeds them: data URLs by the shortest-encoding rule, fields in Go order."""

from __future__ import annotations

import base64
import gzip
import urllib.parse

from app.ignition import go_gzip
from app.ignition.butane_schema import S


def make_data_url(data: bytes, compression: str | None = None) -> tuple[str, str | None]:
    """Butane's MakeDataURL: shortest of percent-encoding, base64 and (unless the user set a
    compression) gzip+base64. Returns (url, compression to emit: "" / "gzip" / None = user's)."""
    opaque = "," + urllib.parse.quote(data, safe="-_.!~*'()")
    b64 = ";base64," + base64.b64encode(data).decode()
    if len(b64) < len(opaque):
        opaque = b64
    if compression:
        return "data:" + opaque, None
    emitted = ""
    gz = ";base64," + base64.b64encode(gzip.compress(data, 9, mtime=0)).decode()
    if _go_gzip_url_length(data, len(gz), len(opaque)) + len("gzip") < len(opaque):
        opaque, emitted = gz, "gzip"
    return "data:" + opaque, emitted


def _go_gzip_url_length(data: bytes, zlib_url: int, other: int) -> int:
    """The length of Butane's gzip data URL: Go's gzip decides, and the URL we emit holds zlib's.
    Only a near tie needs Go's exact length (go_gzip.size, pure Python, slower). Go's and zlib's
    gzip differ by at most 8 bytes + 2% of the input over a corpus of text, scripts and random
    bytes; the margin here is twice that, in base64 characters."""
    if abs(zlib_url + len("gzip") - other) <= 24 + len(data) // 16:
        go = go_gzip.size(data)
        if go is not None:
            return len(";base64,") + 4 * -(-go // 3)
    return zlib_url


def with_contents(resource: dict, payload: bytes, compression: str | None) -> dict:
    url, emitted = make_data_url(payload, compression)
    out = dict(resource)
    out["compression"] = compression if emitted is None else emitted
    out["source"] = url
    return in_spec_order("Resource", out)


def in_spec_order(name: str, data: dict) -> dict:
    order = {f[1]: i for i, f in enumerate(S[name]) if f[1]}
    return dict(sorted(data.items(), key=lambda kv: order.get(kv[0], len(order))))
