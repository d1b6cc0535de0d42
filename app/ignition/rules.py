"""Ignition configs: the semantic rules Ignition enforces beyond its JSON Schema, the official
schema check, and Butane-identical JSON bytes.

The JSON Schemas (draft-04) have no `additionalProperties: false` and no version pin, and the
rules that matter at boot (absolute paths, duplicates, hashes, unit syntax) live in Ignition's Go
code. `check` re-implements those with Ignition's own messages (per-type rules: validators.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.ignition import messages as m
from app.ignition.butane_schema import S
from app.ignition.validators import CHECKS

Loc = tuple[str | int, ...]


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
    """Ignition's validation of a config, as Butane runs it on what it generated: first the duplicate
    check over every list, then each type's own rules, both walking the config in Go struct order.
    Paths are Ignition JSON paths."""
    version = config.get("ignition", {}).get("version", "3.4.0")
    found: list[Report] = []

    def duplicates(kind: str, value: dict, loc: Loc) -> None:
        seen: dict[str, set] = {}
        for key, item_kind in _fields(kind, version):
            if not isinstance(item_kind, list) or key in IGNORE_DUPS.get(kind, ()):
                continue
            handle = seen.setdefault(MERGED_KEYS.get((kind, key), key), set())
            for i, item in enumerate(value.get(key) or []):
                ident = _dup_key(item_kind[0], item)
                if ident in handle:
                    found.append(Report("error", loc + (key, i), m.DUPLICATE))
                handle.add(ident)

    def semantics(kind: str, value: dict, loc: Loc) -> None:
        rule = CHECKS.get(kind)
        if rule:
            found.extend(Report(level, loc + suffix, message) for level, suffix, message in rule(value, version))

    _walk("Config", config, (), version, duplicates)
    _walk("Config", config, (), version, semantics)
    return found


# Go types whose lists Ignition does not check for duplicates, and lists that share one key space.
IGNORE_DUPS = {"File": ("append",), "Filesystem": ("options", "mountOptions"), "Luks": ("options",),
               "Raid": ("options",)}
MERGED_KEYS = {("Storage", "directories"): "Node", ("Storage", "files"): "Node", ("Storage", "links"): "Node",
               ("KernelArgs", "shouldExist"): "KernelArgument", ("KernelArgs", "shouldNotExist"): "KernelArgument"}
KEY_FIELDS = {"File": "path", "Directory": "path", "Link": "path", "Header": "name", "Disk": "device",
              "Filesystem": "device", "Luks": "name", "Raid": "name", "Unit": "name", "Dropin": "name",
              "User": "name", "Group": "name", "Tang": "url", "Resource": "source"}


def _dup_key(kind: str, item) -> str:
    if not isinstance(item, dict):
        return str(item)
    if kind == "Partition":
        if item.get("number"):
            return f"number:{item['number']}"
        return f"label:{item['label']}" if item.get("label") is not None else ""
    return str(item.get(KEY_FIELDS.get(kind, ""), "") or "")


def _fields(kind: str, version: str) -> list[tuple[str, object]]:
    return [(f[1], f[2]) for f in S.get(kind, ()) if f[1] and not (len(f) > 3 and f[3] > version)]


def _walk(kind: str, value, loc: Loc, version: str, visit) -> None:
    if not isinstance(value, dict):
        return
    visit(kind, value, loc)
    for key, field_kind in _fields(kind, version):
        child = value.get(key)
        if isinstance(field_kind, list) and field_kind[0] in S and isinstance(child, list):
            for i, item in enumerate(child):
                _walk(field_kind[0], item, loc + (key, i), version, visit)
        elif isinstance(field_kind, str) and field_kind in S:
            _walk(field_kind, child, loc + (key,), version, visit)
