"""Find a cluster's secrets in anything a client received, including inside Ignition configs (whose
file contents are data URLs, percent-encoded, base64 or gzip+base64)."""

from __future__ import annotations

import base64
import gzip
import json
import urllib.parse
from pathlib import Path

SECRET_FILES = ("ca.key", "sa.key", "front-proxy-ca.key", "etcd/ca.key", "admin.key", "bootstrap-token",
                "certificate-key")


def cluster_secrets(output: Path) -> dict[str, str]:
    """name -> a distinctive piece of each secret (a PEM key's first body line, or the token)."""
    found = {}
    for name in SECRET_FILES:
        text = (output / "credentials" / name).read_text().strip()
        found[name] = text.splitlines()[1] if text.startswith("-----") else text
    return found


def _data_url(url: str) -> bytes:
    head, _, data = url.partition(",")
    raw = base64.b64decode(data) if head.endswith(";base64") else urllib.parse.unquote_to_bytes(data)
    return raw


def readable_texts(body: bytes) -> list[str]:
    """The body, and when it is an Ignition config every file it would write, decoded."""
    texts = [body.decode(errors="replace")]
    try:
        config = json.loads(body)
    except ValueError:
        return texts
    if not isinstance(config, dict):
        return texts
    for entry in config.get("storage", {}).get("files", []) or []:
        source = (entry.get("contents") or {}).get("source") or ""
        if source.startswith("data:"):
            raw = _data_url(source)
            if (entry.get("contents") or {}).get("compression") == "gzip":
                raw = gzip.decompress(raw)
            texts.append(raw.decode(errors="replace"))
    return texts


def leaked(body: bytes, secrets: dict[str, str]) -> list[str]:
    texts = readable_texts(body)
    return [name for name, value in secrets.items() if any(value in text for text in texts)]
