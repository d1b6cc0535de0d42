"""Butane (Flatcar variant) to Ignition, in Python: what `butane --strict [-d DIR]` does.

`flatcar` `1.0.0` emits Ignition 3.3.0 and `1.1.0` emits 3.4.0. Keys are renamed field by field,
inline and local contents become data URLs by Butane's shortest-encoding rule, trees expand into
files and links, and the result goes through Ignition's own semantic rules (app/render/ignition.py).
Problems are reported the way Butane reports them: `error at $.path, line L col C: message`.
"""

from __future__ import annotations

import base64
import gzip
import os
import posixpath
import re
import stat
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from app.ignition import rules as ignition
from app.ignition.butane_schema import GO_TYPES, S, YAML_TAGS
from app.ignition.rules import Report
from app.yaml_source import Loc, Source, SourceError, parse_source

VARIANTS = {("flatcar", "1.0.0"): "3.3.0", ("flatcar", "1.1.0"): "3.4.0"}
SEMVER = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")
FILES_DIR_REQUIRED = ("local file paths are relative to a files directory that must be specified "
                      "with -d/--files-dir")


class ButaneError(Exception):
    """Translation failed; `reports` are Butane-style lines, `summary` its closing line."""

    def __init__(self, summary: str, reports: list[Report] | None = None):
        self.summary, self.reports = summary, reports or []
        super().__init__("\n".join([*(r.text() for r in self.reports), summary]))


@dataclass
class Result:
    config: dict
    warnings: list[Report] = field(default_factory=list)

    def json(self, pretty: bool = False) -> bytes:
        return ignition.dumps(self.config, pretty=pretty)


def translate(text: str, *, files_dir: Path | None = None, strict: bool = True, name: str = "config.bu") -> Result:
    """Butane YAML text → Ignition config dict. Raises ButaneError like `butane --strict` fails."""
    try:
        source = parse_source(text, Path(name))
    except SourceError as exc:
        detail = re.sub(r"character '.*?' that", "character that", exc.problem)
        line = f"line {exc.pos.line}: " if exc.pos else ""
        raise ButaneError(f"Error translating config: Error unmarshaling yaml: yaml: {line}{detail}") from None
    data = source.data if isinstance(source.data, dict) else {}
    version = _spec_version(data)
    tr = _Translator(source, files_dir, version)
    config = tr.struct("Config", data, ())
    if tr.type_errors:
        raise ButaneError("Error translating config: yaml: unmarshal errors:\n  " + "\n  ".join(tr.type_errors))
    config = {"ignition": {**config.get("ignition", {}), "version": version}, **{
        k: v for k, v in config.items() if k != "ignition"}}
    tr.expand_trees(config)
    if any(r.level == "error" for r in tr.reports):
        raise ButaneError("Error translating config: source config is invalid", tr.reports)
    checked = [tr.locate(r) for r in ignition.check(config)]
    reports = tr.reports + checked
    if any(r.level == "error" for r in checked):
        raise ButaneError("Error translating config: config generated was invalid", reports)
    if strict and reports:
        raise ButaneError("Config produced warnings and --strict was specified", reports)
    return Result(config, reports)


def _spec_version(data: dict) -> str:
    variant, version = data.get("variant"), data.get("version")
    if not variant:
        raise ButaneError("Error translating config: error parsing variant; must be specified")
    if not isinstance(version, str) or not SEMVER.fullmatch(version):
        raise ButaneError("Error translating config: error parsing version; must be a valid semver")
    if (variant, version) not in VARIANTS:
        raise ButaneError(f"Error translating config: No translator exists for variant {variant} "
                          f"with version {version}")
    return VARIANTS[(variant, version)]


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


class _Translator:
    def __init__(self, source: Source, files_dir: Path | None, version: str):
        self.source, self.files_dir, self.version = source, files_dir, version
        self.reports: list[Report] = []
        self.type_errors: list[str] = []
        self.origins: dict[Loc, Loc] = {}  # Ignition path -> Butane path, for error positions
        self.trees: list[tuple[Loc, dict]] = []

    # -- reporting ---------------------------------------------------------------------------------
    def report(self, level: str, loc: Loc, message: str, *, key: bool = False) -> None:
        pos = self.source.pos(loc, key=key)
        self.reports.append(Report(level, loc, message, pos.line, pos.column))

    def locate(self, report: Report) -> Report:
        """Turn an Ignition-path report into one at the Butane line it came from."""
        loc = report.loc
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.origins:
                butane = self.origins[loc[:n]] + loc[n:]
                pos = self.source.pos(butane)
                return Report(report.level, butane, report.message, pos.line, pos.column)
        return report

    # -- generic walk ------------------------------------------------------------------------------
    def value(self, kind, value, loc: Loc, out: Loc):
        if isinstance(kind, list):
            if not isinstance(value, list):
                return self._type_error(value, loc, "[]" + _go(kind[0]))
            return [self.value(kind[0], v, loc + (i,), out + (i,)) for i, v in enumerate(value)]
        if kind in S:
            return self.struct(kind, value, loc, out)
        if kind == "Any":
            return value
        return self.scalar(kind, value, loc)

    def scalar(self, kind: str, value, loc: Loc):
        if kind == "str" and not isinstance(value, (dict, list)):
            return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "bool" and isinstance(value, bool):
            return value
        return self._type_error(value, loc, GO_TYPES[kind])

    def _type_error(self, value, loc: Loc, go_type: str):
        line = self.source.pos(loc).line
        shown = value if not isinstance(value, (dict, list)) else ""
        self.type_errors.append(f"line {line}: cannot unmarshal !!{YAML_TAGS.get(type(value), 'str')} "
                                f"`{shown}` into {go_type}")
        return None

    def struct(self, name: str, data, loc: Loc, out: Loc = ()) -> dict:
        if data is None:
            return {}
        if not isinstance(data, dict):
            return self._type_error(data, loc, name) or {}
        self.origins[out] = loc
        fields = {f[0]: f for f in S[name]}
        for key in data:
            spec = fields.get(key)
            if spec is None or (len(spec) > 3 and spec[3] > self.version):
                self.report("warning", loc + (key,), f"Unused key {key}", key=True)
        special = getattr(self, f"_sugar_{name}", None)
        result: dict = {}
        for key, json_key, kind, *_ in S[name]:
            if json_key is None or key not in data or data[key] is None:
                continue
            if len(_) and _[0] > self.version:
                continue
            self.origins[out + (json_key,)] = loc + (key,)
            value = self.value(kind, data[key], loc + (key,), out + (json_key,))
            if value is not None and value != {} and value != []:
                result[json_key] = value
        if special:
            result = special(data, loc, out, result)
        return result

    # -- sugar -------------------------------------------------------------------------------------
    def _exclusive(self, data: dict, loc: Loc, names: tuple[str, ...]) -> bool:
        present = [n for n in names if data.get(n) is not None]
        if len(present) > 1:
            self.report("error", loc + (present[-1],),
                        f"only one of the following can be set: {', '.join(names)}")
            return False
        return True

    def _read_local(self, rel: str, loc: Loc) -> bytes | None:
        if self.files_dir is None:
            self.report("error", loc, FILES_DIR_REQUIRED)
            return None
        root = os.path.normpath(self.files_dir)
        target = os.path.normpath(os.path.join(root, rel))
        if target != root and not target.startswith(root + os.sep):
            self.report("error", loc, "local file path traverses outside the files directory")
            return None
        try:
            return Path(target).read_bytes()
        except OSError as exc:
            self.report("error", loc, f"open {target}: {exc.strerror.lower() if exc.strerror else exc}")
            return None

    def _sugar_Resource(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        if not self._exclusive(data, loc, ("inline", "local", "source")):
            return result
        if data.get("inline") is not None:
            payload = self.scalar("str", data["inline"], loc + ("inline",))
            payload = payload.encode() if payload is not None else None
        elif data.get("local") is not None:
            payload = self._read_local(str(data["local"]), loc + ("local",))
        else:
            return result
        if payload is None:
            return result
        self.origins[out + ("source",)] = loc + ("inline" if "inline" in data else "local",)
        return _with_contents(result, payload, result.get("compression"))

    def _sugar_Unit(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        return self._contents_local("Unit", data, loc, result)

    def _sugar_Dropin(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        return self._contents_local("Dropin", data, loc, result)

    def _contents_local(self, name: str, data: dict, loc: Loc, result: dict) -> dict:
        if self._exclusive(data, loc, ("contents", "contents_local")) and data.get("contents_local") is not None:
            text = self._read_local(str(data["contents_local"]), loc + ("contents_local",))
            if text is not None:
                result = _in_spec_order(name, {**result, "contents": text.decode()})
        return result

    def _sugar_User(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        locals_ = data.get("ssh_authorized_keys_local") or []
        keys = list(result.get("sshAuthorizedKeys", []))
        for i, rel in enumerate(locals_ if isinstance(locals_, list) else []):
            text = self._read_local(str(rel), loc + ("ssh_authorized_keys_local", i))
            if text is not None:
                keys += [line for line in re.split(r"\r?\n", text.decode()) if line]
        if keys:
            result["sshAuthorizedKeys"] = keys
            result = _in_spec_order("User", result)
        return result

    def _sugar_File(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        self._decimal_mode(result.get("mode"), loc + ("mode",), directory=False)
        return result

    def _sugar_Directory(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        self._decimal_mode(result.get("mode"), loc + ("mode",), directory=True)
        return result

    def _decimal_mode(self, mode, loc: Loc, directory: bool) -> None:
        """Butane's hint for `mode: 644`: the digits make sense as octal, the decimal value does not."""
        digits = str(mode) if isinstance(mode, int) else ""
        if not digits or len(digits) > 4 or set(digits) - set("01234567"):
            return
        if _typical_mode(int(digits, 8), directory) and not _typical_mode(mode, directory):
            self.report("warning", loc, "unreasonable mode would be reasonable if specified in octal; "
                        "remember to add a leading zero")

    def _sugar_Filesystem(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        if data.get("with_mount_unit"):
            self.report("error", loc + ("with_mount_unit",),
                        "with_mount_unit is not supported by this translator; write the .mount unit")
        return result

    def _sugar_Luks(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        if data.get("clevis") is not None:
            self.report("error", loc + ("clevis",), "clevis is not supported in this spec version")
        return result

    def _sugar_Storage(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        trees = data.get("trees")
        for i, tree in enumerate(trees if isinstance(trees, list) else []):
            self.struct("Tree", tree, loc + ("trees", i))
            self.trees.append((loc + ("trees", i), tree if isinstance(tree, dict) else {}))
        return result

    # -- trees -------------------------------------------------------------------------------------
    def expand_trees(self, config: dict) -> None:
        for loc, tree in self.trees:
            if self.files_dir is None:
                self.report("error", loc, FILES_DIR_REQUIRED)
                continue
            local = tree.get("local")
            if not local:
                self.report("error", loc + ("local",), "local is required")
                continue
            root = Path(os.path.normpath(os.path.join(self.files_dir, str(local))))
            if not root.is_dir():
                self.report("error", loc, "root of tree must be a directory")
                continue
            self._walk_tree(config.setdefault("storage", {}), root, str(tree.get("path") or "/"), loc)
        storage = config.get("storage")
        if storage is not None:
            config["storage"] = _in_spec_order("Storage", {k: v for k, v in storage.items() if v})
            if not config["storage"]:
                del config["storage"]

    def _walk_tree(self, storage: dict, root: Path, dest: str, loc: Loc) -> None:
        files, links = storage.setdefault("files", []), storage.setdefault("links", [])
        by_path = {e["path"]: ("file", e) for e in files if "path" in e}
        by_path.update({e["path"]: ("link", e) for e in links if "path" in e})
        by_path.update({e["path"]: ("dir", e) for e in storage.get("directories", []) if "path" in e})
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                real = Path(dirpath, name)
                target = posixpath.join(dest, real.relative_to(root).as_posix())
                info = real.lstat()
                existing = by_path.get(target)
                if stat.S_ISLNK(info.st_mode):
                    if existing:
                        self.report("error", loc, "matching filesystem node has existing contents or different type")
                        continue
                    links.append({"path": target, "target": os.readlink(real)})
                    self.origins[("storage", "links", len(links) - 1)] = loc
                elif stat.S_ISREG(info.st_mode):
                    self._tree_file(files, existing, target, real, info, loc)
                else:
                    self.report("error", loc, "trees may only contain files, directories, and symlinks")

    def _tree_file(self, files: list, existing, target: str, real: Path, info, loc: Loc) -> None:
        if existing and (existing[0] != "file" or "contents" in existing[1] or "append" in existing[1]):
            self.report("error", loc, "matching filesystem node has existing contents or different type")
            return
        entry = existing[1] if existing else {"path": target}
        entry["contents"] = _with_contents({}, real.read_bytes(), None)
        entry.setdefault("mode", 0o755 if info.st_mode & 0o111 else 0o644)
        ordered = _in_spec_order("File", entry)
        entry.clear()
        entry.update(ordered)  # in place: `existing` entries are already in the files list
        if not existing:
            files.append(entry)
            self.origins[("storage", "files", len(files) - 1)] = loc


def _with_contents(resource: dict, payload: bytes, compression: str | None) -> dict:
    url, emitted = make_data_url(payload, compression)
    out = dict(resource)
    out["compression"] = compression if emitted is None else emitted
    out["source"] = url
    return _in_spec_order("Resource", out)


def _in_spec_order(name: str, data: dict) -> dict:
    order = {f[1]: i for i, f in enumerate(S[name]) if f[1]}
    return dict(sorted(data.items(), key=lambda kv: order.get(kv[0], len(order))))


def _typical_mode(mode: int, directory: bool) -> bool:
    """No special bits, readable (and for directories searchable) by the owner."""
    needed = 0o500 if directory else 0o400
    return mode & ~0o777 == 0 and mode & needed == needed


def _go(kind) -> str:
    return GO_TYPES.get(kind, kind) if isinstance(kind, str) else "[]" + _go(kind[0])
