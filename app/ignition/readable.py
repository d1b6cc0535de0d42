"""An Ignition config as a person reads it: each file with its contents, each unit with its text.

For `bootstrap-node show`: what a node will receive, without jq and base64. Files only the node
may read (no read bit for group or others: keys, tokens) are named but never printed, so the
command is safe on a shared screen. Text is shown with control characters escaped: a template or
cluster.yaml value can never move the cursor or recolour a terminal.
"""

from __future__ import annotations

import base64
import gzip
import re
import urllib.parse
from dataclasses import dataclass

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class UnreadableContents(ValueError):
    """A data URL that is malformed or whose compression is unknown."""


@dataclass(frozen=True)
class Contents:
    data: bytes | None  # None: fetched by the node from `source`
    source: str


def safe_text(text: str) -> str:
    """`text` with every control character other than newline and tab written as an escape."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)


def decode_contents(contents: dict) -> Contents:
    """Ignition's `contents` (`source`, `compression`): the bytes of a data URL, or where the node
    fetches it."""
    source = contents.get("source") or ""
    if not source.startswith("data:"):
        return Contents(None, source)
    header, comma, payload = source[len("data:"):].partition(",")
    if not comma:
        raise UnreadableContents("a data URL without a comma")
    try:
        data = base64.b64decode(payload, validate=True) if header.endswith(";base64") \
            else urllib.parse.unquote_to_bytes(payload)
    except ValueError as exc:
        raise UnreadableContents(f"bad base64 in a data URL: {exc}") from None
    compression = contents.get("compression") or ""
    if compression == "gzip":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise UnreadableContents(f"bad gzip data: {exc}") from None
    elif compression:
        raise UnreadableContents(f"unknown compression {compression!r}")
    return Contents(data, source)


def _body(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"(binary, {len(data)} bytes)\n"
    return safe_text(text if text.endswith("\n") or not text else text + "\n")


def _is_secret(mode: int | None) -> bool:
    return mode is not None and not mode & 0o044


def _file(entry: dict) -> list[str]:
    mode = entry.get("mode")
    shown_mode = f"{mode:04o}" if isinstance(mode, int) else "default mode"
    head = f"--- file {safe_text(entry['path'])} ({shown_mode}"
    try:
        contents = decode_contents(entry.get("contents") or {})
    except UnreadableContents as exc:
        return [f"{head}): cannot be read: {exc}"]
    if contents.data is None:
        if not contents.source:
            return [f"{head}): empty"]
        check = ", checked against its hash" if (entry.get("contents") or {}).get("verification") else ""
        return [f"{head}): fetched by the node from {safe_text(contents.source)}{check}"]
    if _is_secret(mode):
        return [f"{head}): secret, {len(contents.data)} bytes, not shown"]
    return [f"{head}, {len(contents.data)} bytes)", _body(contents.data).rstrip("\n")]


def _unit(unit: dict) -> list[str]:
    states = [s for s, on in (("enabled", unit.get("enabled")), ("masked", unit.get("mask"))) if on]
    if unit.get("enabled") is False:
        states.append("disabled")
    out = [f"--- unit {safe_text(unit['name'])}" + (f" ({', '.join(states)})" if states else "")]
    if unit.get("contents"):
        out.append(_body(unit["contents"].encode()).rstrip("\n"))
    for dropin in unit.get("dropins") or []:
        out.append(f"--- drop-in {safe_text(unit['name'])}.d/{safe_text(dropin['name'])}")
        out.append(_body((dropin.get("contents") or "").encode()).rstrip("\n"))
    return out


def describe(config: dict) -> str:
    """Everything a node does with `config`, in the order Ignition applies it."""
    out: list[str] = []
    if args := config.get("kernelArguments"):
        out.append("kernel arguments: " + safe_text(" ".join(
            [*args.get("shouldExist", []), *(f"-{a}" for a in args.get("shouldNotExist", []))])))
    for user in (config.get("passwd") or {}).get("users") or []:
        keys = user.get("sshAuthorizedKeys") or []
        out.append(f"--- user {safe_text(user['name'])}: {len(keys)} SSH key(s)")
        out.extend(f"    {safe_text(k)}" for k in keys)
    storage = config.get("storage") or {}
    for directory in storage.get("directories") or []:
        out.append(f"--- directory {safe_text(directory['path'])}")
    for entry in storage.get("files") or []:
        out.extend(_file(entry))
    for link in storage.get("links") or []:
        kind = "hard link" if link.get("hard") else "link"
        out.append(f"--- {kind} {safe_text(link['path'])} -> {safe_text(link.get('target', ''))}")
    for unit in (config.get("systemd") or {}).get("units") or []:
        out.extend(_unit(unit))
    return "\n".join(out) + "\n"
