"""What a root directory holds once Ignition applied a config, in one shape for two sources: the
expectation, derived from the config alone, and the observation, either a walk of a directory on
this host or the manifest the lab's stand-in prints on its serial console (same fields)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import stat
import urllib.parse
from collections.abc import Callable
from pathlib import Path

# path -> (kind, mode, uid, gid, sha256 of a file's bytes | a link's target | "" for a directory)
Entry = tuple[str, int, int, int, str]
CORE_UID = 500  # Flatcar's core user and group
ACCOUNTS = {"root": 0, "core": CORE_UID}
# A Flatcar root before Ignition: the accounts its image ships.
ACCOUNT_FILES = {"passwd": "root:x:0:0:root:/root:/bin/bash\ncore:x:500:500:Flatcar Admin:/home/core:/bin/bash\n",
                 "group": "root:x:0:\ncore:x:500:core\n", "shadow": "root:*:1::::::\ncore:*:1::::::\n",
                 "gshadow": "root:*::\ncore:!::\n"}
PRESET = "/etc/systemd/system-preset/20-ignition.preset"


def decode(resource: dict) -> bytes:
    header, payload = resource["source"][len("data:"):].split(",", 1)
    raw = base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    return gzip.decompress(raw) if resource.get("compression") == "gzip" else raw


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _owner(entry: dict) -> tuple[int, int]:
    user, group = entry.get("user") or {}, entry.get("group") or {}
    return (user.get("id", ACCOUNTS.get(user.get("name", "root"), -1)),
            group.get("id", ACCOUNTS.get(group.get("name", "root"), -1)))


def expected(config: dict, remote: Callable[[str], bytes]) -> dict[str, Entry]:
    """Every path the config makes, as Ignition writes it; `remote(url)` gives an http(s) source."""
    out: dict[str, Entry] = {}
    storage = config.get("storage", {})
    for entry in storage.get("files", []):
        source = (entry.get("contents") or {}).get("source", "")
        data = decode(entry["contents"]) if source.startswith("data:") else remote(source) if source else b""
        out[entry["path"]] = ("file", entry.get("mode", 0o644), *_owner(entry), _sha(data))
    for entry in storage.get("directories", []):
        out[entry["path"]] = ("dir", entry.get("mode", 0o755), *_owner(entry), "")
    for entry in storage.get("links", []):
        out[entry["path"]] = ("link", 0o777, *_owner(entry), entry["target"])
    for unit in config.get("systemd", {}).get("units", []):
        path = f"/etc/systemd/system/{unit['name']}"
        if unit.get("mask"):
            out[path] = ("link", 0o777, 0, 0, "/dev/null")
        elif "contents" in unit:
            out[path] = ("file", 0o644, 0, 0, _sha(unit["contents"].encode()))
        for dropin in unit.get("dropins", []):
            out[f"{path}.d/{dropin['name']}"] = ("file", 0o644, 0, 0, _sha(dropin["contents"].encode()))
    for user in config.get("passwd", {}).get("users", []):
        if user.get("sshAuthorizedKeys"):
            uid = ACCOUNTS[user["name"]]
            keys = "".join(f"{key}\n" for key in user["sshAuthorizedKeys"]).encode()
            out[f"/home/{user['name']}/.ssh/authorized_keys.d/ignition"] = ("file", 0o600, uid, uid, _sha(keys))
    return out


def enabled(config: dict) -> set[str]:
    """The units Ignition enables (by its preset file): `enabled: true`."""
    return {u["name"] for u in config.get("systemd", {}).get("units", []) if u.get("enabled") is True}


def observe(root: Path, paths) -> dict[str, Entry]:
    """The same fields for `paths` under the directory `root` (missing paths are left out)."""
    out: dict[str, Entry] = {}
    for path in paths:
        full = root / path.lstrip("/")
        try:
            st = full.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            out[path] = ("link", 0o777, st.st_uid, st.st_gid, os.readlink(full))
        elif stat.S_ISDIR(st.st_mode):
            out[path] = ("dir", st.st_mode & 0o7777, st.st_uid, st.st_gid, "")
        else:
            out[path] = ("file", st.st_mode & 0o7777, st.st_uid, st.st_gid, _sha(full.read_bytes()))
    return out


def preset_units(text: str) -> set[str]:
    return {line.split()[1] for line in text.splitlines() if line.startswith("enable ")}


def parse_manifest(text: str) -> dict[str, Entry]:
    """The stand-in's manifest: `KIND MODE(octal) UID GID PATH [SHA256|TARGET]` per line."""
    out: dict[str, Entry] = {}
    for line in text.splitlines():
        kind, mode, uid, gid, path, *rest = line.split(" ", 5)
        out[path] = (kind, int(mode, 8), int(uid), int(gid), rest[0] if rest else "")
    return out
