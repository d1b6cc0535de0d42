"""Ignition as real Matchbox serves it (`serve --matchbox-data`): Matchbox parses every config, raw or
translated from Butane, into the Go types of the newest spec it knows (Ignition 3.4.0, upgrading
3.0-3.3) and answers with Go's encoding/json of them. So the version says 3.4.0 whatever Butane
emitted, keys Ignition does not know are gone, and every struct-typed field is present even when
empty (`"user":{}`, `"verification":{}`): Go's `omitempty` never drops a struct. Pointers and
slices that are nil or empty are left out."""

from __future__ import annotations

from app.ignition.butane_schema import S

SERVED_VERSION = "3.4.0"


def as_matchbox_serves(config: dict) -> dict:
    """The config, upgraded to 3.4.0 and shaped as Go marshals Ignition's v3_4 `types.Config`."""
    ignition = config.get("ignition") if isinstance(config.get("ignition"), dict) else {}
    return _shape("Config", {**config, "ignition": {**ignition, "version": SERVED_VERSION}})


def _shape(kind: str, value: dict) -> dict:
    out: dict = {}
    for _, key, field_kind, *_gate in S[kind]:
        if not key:
            continue  # Butane-only sugar
        child = value.get(key)
        if isinstance(field_kind, str) and field_kind in S:
            out[key] = _shape(field_kind, child if isinstance(child, dict) else {})
        elif isinstance(field_kind, list):
            if child:
                item = field_kind[0]
                out[key] = [_shape(item, i) if item in S and isinstance(i, dict) else i for i in child]
        elif child is not None:
            out[key] = child
    if kind == "Ignition" and value.get("version"):
        out["version"] = value["version"]  # Go's Ignition.Version (omitempty) follows Timeouts
    return out
