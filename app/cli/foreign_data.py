"""`serve --matchbox-data`: a Matchbox data dir is served the way Matchbox serves it, to anyone who
asks, with no install windows. A tree holding private keys or join tokens (the appliance's own output,
or a copy of it) would hand them to the whole LAN, so serve refuses it unless told otherwise."""

from __future__ import annotations

import base64
import binascii
import gzip
import io
import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

SECRET = re.compile(rb"PRIVATE KEY-----|\b[a-z0-9]{6}\.[a-z0-9]{16}\b")  # a PEM key; a kubeadm token
MAX_FILE = 16 * 1024 * 1024  # larger files are not configs
MAX_DECODED = 64 * 1024 * 1024  # a gzip bomb in a data URL is cut short, not inflated


def secret_in(data_dir: Path) -> str | None:
    """Why `data_dir` holds a secret (the file and what), or None."""
    root = data_dir.resolve()
    if (root.parent / "credentials").is_dir():
        return f"{root} is an appliance's generated tree ({root.parent / 'credentials'} is beside it)"
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            if path.stat().st_size > MAX_FILE:
                continue
            raw = path.read_bytes()
        except OSError:
            continue
        if any(SECRET.search(text) for text in _readable(raw)):
            return f"{path} holds a private key or a join token"
    return None


def _readable(raw: bytes) -> Iterator[bytes]:
    """The file, and when it is an Ignition config each file it would write, decoded."""
    yield raw
    try:
        config = json.loads(raw)
    except (ValueError, RecursionError):
        return
    files = (config.get("storage") or {}).get("files") if isinstance(config, dict) else None
    for entry in files if isinstance(files, list) else []:
        contents = entry.get("contents") if isinstance(entry, dict) else None
        if isinstance(contents, dict) and isinstance(contents.get("source"), str):
            yield _data_url(contents["source"], contents.get("compression"))


def _data_url(url: str, compression) -> bytes:
    if not url.startswith("data:"):
        return b""
    head, _, data = url.partition(",")
    try:
        raw = base64.b64decode(data) if head.endswith(";base64") else urllib.parse.unquote_to_bytes(data)
        if compression == "gzip":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
                raw = f.read(MAX_DECODED)
    except (binascii.Error, OSError, EOFError, ValueError):
        return b""
    return raw
