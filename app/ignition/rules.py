"""Ignition configs: the semantic rules Ignition enforces beyond its JSON Schema, the official
schema check, and Butane-identical JSON bytes.

The JSON Schemas (draft-04) have no `additionalProperties: false` and no version pin, and the
rules that matter at boot (absolute paths, duplicates, hashes, unit names) live in Ignition's Go
code. `check` re-implements those with Ignition's own messages.
"""

from __future__ import annotations

import json
import posixpath
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

Loc = tuple[str | int, ...]
UNIT_TYPES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target", ".path",
              ".timer", ".snapshot", ".slice", ".scope")
URL_SCHEMES = ("http", "https", "tftp", "s3", "arn", "gs", "data")
HASH_SIZES = {"sha512": 128, "sha256": 64}


@dataclass(frozen=True)
class Report:
    """One problem, at an Ignition path or (after translation) a Butane path with its position."""

    level: str  # "error" | "warning"
    loc: Loc
    message: str
    lineno: int | None = None
    column: int | None = None

    def path(self) -> str:
        return "$." + ".".join(str(p) for p in self.loc) if self.loc else "$"

    def text(self) -> str:
        where = f", line {self.lineno} col {self.column}" if self.lineno else ""
        return f"{self.level} at {self.path()}{where}: {self.message}"


def dumps(config: dict, pretty: bool = False) -> bytes:
    """JSON exactly as Butane prints it (Go's encoding/json escaping), with a trailing newline."""
    text = json.dumps(config, ensure_ascii=False, indent=2 if pretty else None,
                      separators=None if pretty else (",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return (text + "\n").encode()


def schema_errors(config: dict, schemas_dir: Path) -> list[str]:
    """Errors from the official JSON Schema of the config's own spec version."""
    import jsonschema

    version = config.get("ignition", {}).get("version", "")
    path = schemas_dir / f"ignition-{version}.schema.json"
    if not path.exists():
        return [f"no schema for Ignition spec version {version!r}"]
    validator = jsonschema.Draft4Validator(json.loads(path.read_text()))
    return [f"$.{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(config)]


def check(config: dict) -> list[Report]:
    """Ignition's semantic validation. Paths are Ignition JSON paths."""
    out: list[Report] = []
    err = lambda loc, msg: out.append(Report("error", loc, msg))  # noqa: E731
    storage = config.get("storage", {})
    _check_nodes(storage, err)
    for i, f in enumerate(storage.get("files", [])):
        loc = ("storage", "files", i)
        if f.get("overwrite") and not (f.get("contents") or {}).get("source"):
            err(loc + ("overwrite",), "overwrite must be false if source is unspecified")
        for j, res in [(None, f.get("contents"))] + list(enumerate(f.get("append", []))):
            if res:
                _check_resource(res, loc + (("contents",) if j is None else ("append", j)), err)
    for i, link in enumerate(storage.get("links", [])):
        if not link.get("target"):
            err(("storage", "links", i, "target"), "link target is required")
    _check_units(config.get("systemd", {}), out)
    for i, user in enumerate(config.get("passwd", {}).get("users", [])):
        _duplicates([(("passwd", "users", i, "sshAuthorizedKeys", j), k)
                     for j, k in enumerate(user.get("sshAuthorizedKeys", []))], err)
    passwd = config.get("passwd", {})
    for kind in ("users", "groups"):
        _duplicates([(("passwd", kind, i), u.get("name")) for i, u in enumerate(passwd.get(kind, []))], err)
    for i, res in enumerate(config.get("ignition", {}).get("config", {}).get("merge", [])):
        _check_resource(res, ("ignition", "config", "merge", i), err)
    return out


def _check_nodes(storage: dict, err) -> None:
    nodes = []
    # Ignition walks Storage's fields in struct order: directories, files, links.
    for kind in ("directories", "files", "links"):
        for i, node in enumerate(storage.get(kind, [])):
            loc = ("storage", kind, i)
            path = node.get("path", "")
            if not path.startswith("/"):
                err(loc + ("path",), "path not absolute")
            elif posixpath.normpath(path) != path:
                err(loc + ("path",), "path is not fully simplified")
            mode = node.get("mode")
            if mode is not None and not 0 <= mode <= 0o7777:
                err(loc + ("mode",), "illegal file mode")
            for owner in ("user", "group"):
                if node.get(owner, {}).get("id") is not None and node.get(owner, {}).get("name"):
                    err(loc + (owner,), "cannot set both id and name")
            nodes.append((loc, path))
    _duplicates(nodes, err)
    links = {link.get("path") for link in storage.get("links", []) if not link.get("hard")}
    for loc, path in nodes:
        parent = posixpath.dirname(path)
        while parent not in ("/", ""):
            if parent in links:
                err(loc, "file path includes link in config")
                break
            parent = posixpath.dirname(parent)


def _duplicates(items: list[tuple[Loc, object]], err) -> None:
    seen = set()
    for loc, key in items:
        if key in seen:
            err(loc, "duplicate entry defined")
        seen.add(key)


def _check_resource(res: dict, loc: Loc, err) -> None:
    source = res.get("source")
    if source is not None:
        parsed = urllib.parse.urlparse(source)
        if parsed.scheme not in URL_SCHEMES:
            err(loc + ("source",), "invalid url scheme")
    if res.get("compression") not in (None, "", "gzip"):
        err(loc + ("compression",), "invalid compression method")
    digest = (res.get("verification") or {}).get("hash")
    if digest is not None:
        function, sep, value = digest.partition("-")
        if not sep:
            err(loc + ("verification", "hash"), "malformed hash specifier")
        elif function not in HASH_SIZES:
            err(loc + ("verification", "hash"), "unrecognized hash function")
        elif len(value) != HASH_SIZES[function] or not re.fullmatch(r"[0-9a-fA-F]*", value):
            err(loc + ("verification", "hash"), "incorrect size for hash sum")


def _check_units(systemd: dict, out: list[Report]) -> None:
    err = lambda loc, msg: out.append(Report("error", loc, msg))  # noqa: E731
    units = systemd.get("units", [])
    _duplicates([(("systemd", "units", i), u.get("name")) for i, u in enumerate(units)], err)
    for i, unit in enumerate(units):
        loc = ("systemd", "units", i)
        name = unit.get("name", "")
        if not name.endswith(UNIT_TYPES):
            err(loc + ("name",), "invalid systemd unit extension")
        dropins = unit.get("dropins", [])
        _duplicates([(loc + ("dropins", j), d.get("name")) for j, d in enumerate(dropins)], err)
        for j, dropin in enumerate(dropins):
            if not dropin.get("name", "").endswith(".conf"):
                err(loc + ("dropins", j, "name"), "invalid systemd drop-in extension")
        contents = unit.get("contents")
        if unit.get("enabled") and contents and not re.search(r"^\s*\[Install\]\s*$", contents, re.M):
            out.append(Report("warning", loc + ("contents",),
                              f'unit "{name}" is enabled, but has no install section so enable does nothing'))
