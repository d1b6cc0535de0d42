"""Contents as Butane embeds them: data URLs by the shortest-encoding rule, fields in Go order."""

from __future__ import annotations

import base64
import gzip
import urllib.parse

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
    if len(gz) + len("gzip") < len(opaque):
        opaque, emitted = gz, "gzip"
    return "data:" + opaque, emitted


def with_contents(resource: dict, payload: bytes, compression: str | None) -> dict:
    url, emitted = make_data_url(payload, compression)
    out = dict(resource)
    out["compression"] = compression if emitted is None else emitted
    out["source"] = url
    return in_spec_order("Resource", out)


def in_spec_order(name: str, data: dict) -> dict:
    order = {f[1]: i for i, f in enumerate(S[name]) if f[1]}
    return dict(sorted(data.items(), key=lambda kv: order.get(kv[0], len(order))))
