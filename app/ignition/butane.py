"""Butane (Flatcar variant) to Ignition, in Python: what `butane [--strict] [-d DIR]` does.

`flatcar` `1.0.0` emits Ignition 3.3.0 and `1.1.0` emits 3.4.0. Keys are renamed field by field,
inline and local contents become data URLs by Butane's shortest-encoding rule, filesystems with
`with_mount_unit` get generated .mount/.swap units (mounts.py), trees expand into files and links
(trees.py), and the result goes through Ignition's own rules (rules.py, validators.py).

Problems are reported the way Butane reports them, `error at $.path, line L col C: message`, and in
Butane's order: unknown keys, then Butane's checks of the source, then translation (local files),
then fields Flatcar forbids (clevis), then Ignition's duplicate and semantic checks.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from app.ignition import messages as m
from app.ignition import rules as ignition
from app.ignition.butane_schema import GO_TYPES, YAML_TAGS, S, yaml_bool
from app.ignition.contents import in_spec_order, make_data_url, with_contents
from app.ignition.mounts import merge_units, mount_units
from app.ignition.rules import Report
from app.ignition.trees import TreeWalker
from app.yaml_source import Loc, Source, SourceError, parse_source

__all__ = ["ButaneError", "Result", "make_data_url", "translate"]

VARIANTS = {("flatcar", "1.0.0"): "3.3.0", ("flatcar", "1.1.0"): "3.4.0"}
SEMVER = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?")
SNAKE = re.compile(r"(MiB|[A-Z])")


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
    """Butane YAML text → Ignition config dict. Raises ButaneError like `butane [--strict]` fails."""
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
    reports = tr.unused + tr.checks
    _fail_on_errors(reports, m.SOURCE_INVALID)
    config = {"ignition": {**config.get("ignition", {}), "version": version}, **{
        k: v for k, v in config.items() if k != "ignition"}}
    tr.add_mount_units(config, data.get("storage"))
    tr.expand_trees(config)
    reports += tr.translation
    _fail_on_errors(reports, m.SOURCE_INVALID)
    reports += [tr.locate(r) for r in _forbidden_fields(config)]
    _fail_on_errors(reports, m.SOURCE_INVALID)
    reports += [tr.locate(r) for r in ignition.check(config)]
    _fail_on_errors(reports, m.GENERATED_INVALID)
    if strict and reports:
        raise ButaneError(m.STRICT_WARNINGS, reports)
    return Result(config, reports)


def _fail_on_errors(reports: list[Report], summary: str) -> None:
    if any(r.level == "error" for r in reports):
        raise ButaneError(summary, reports)


def _forbidden_fields(config: dict) -> list[Report]:
    """The Flatcar variants' field filter: LUKS volumes may not use clevis."""
    return [Report("error", ("storage", "luks", i, "clevis"), m.CLEVIS_SUPPORT)
            for i, luks in enumerate(config.get("storage", {}).get("luks", [])) if luks.get("clevis")]


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


class _Translator:
    def __init__(self, source: Source, files_dir: Path | None, version: str):
        self.source, self.files_dir, self.version = source, files_dir, version
        self.unused: list[Report] = []  # unknown keys (warnings)
        self.checks: list[Report] = []  # Butane's checks of the source, node before children
        self.translation: list[Report] = []  # reading local files, mount units, trees
        self.type_errors: list[str] = []
        self.origins: dict[Loc, Loc] = {}  # Ignition path -> Butane path, for error positions
        self.common: set[Loc] = set()  # Ignition paths whose every field comes from one Butane field
        self.trees: list[tuple[Loc, dict]] = []

    # -- reporting ---------------------------------------------------------------------------------
    def _at(self, level: str, loc: Loc, message: str, *, key: bool = False) -> Report:
        pos = self.source.pos(loc, key=key)
        return Report(level, loc, message, pos.line, pos.column)

    def check(self, level: str, loc: Loc, message: str) -> None:
        self.checks.append(self._at(level, loc, message))

    def failed(self, loc: Loc, message: str) -> None:
        self.translation.append(self._at("error", loc, message))

    def locate(self, report: Report) -> Report:
        """Turn an Ignition-path report into one at the Butane line it came from; fields with no
        Butane counterpart keep their (snake_cased) name under the closest one that has."""
        loc = report.loc
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.origins:
                rest = () if loc[:n] in self.common else tuple(
                    SNAKE.sub(r"_\1", p).lower() if isinstance(p, str) else p for p in loc[n:])
                return self._at(report.level, self.origins[loc[:n]] + rest, report.message)
        return report

    # -- generic walk ------------------------------------------------------------------------------
    def value(self, kind, value, loc: Loc, out: Loc):
        if isinstance(kind, list):
            if not isinstance(value, list):
                return self._type_error(value, loc, "[]" + _go(kind[0]))
            return [self.value(kind[0], v, loc + (i,), out + (i,)) for i, v in enumerate(value)]
        if kind in S:
            return self.struct(kind, value, loc, out)
        return self.scalar(kind, value, loc)

    def scalar(self, kind: str, value, loc: Loc):
        if kind == "str" and not isinstance(value, (dict, list)):
            return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "bool" and yaml_bool(value) is not None:
            return yaml_bool(value)
        return self._type_error(value, loc, GO_TYPES[kind])

    def _type_error(self, value, loc: Loc, go_type: str):
        line = self.source.pos(loc).line
        shown = value if not isinstance(value, (dict, list)) else ""
        self.type_errors.append(f"line {line}: cannot unmarshal !!{YAML_TAGS.get(type(value), 'str')} "
                                f"`{shown}` into {go_type}")

    def _known(self, spec) -> bool:
        return spec is not None and not (len(spec) > 3 and spec[3] > self.version)

    def struct(self, name: str, data, loc: Loc, out: Loc = ()) -> dict:
        if data is None:
            return {}
        if not isinstance(data, dict):
            return self._type_error(data, loc, name) or {}
        self.origins[out] = loc
        fields = {f[0]: f for f in S[name]}
        for key in data:
            if not self._known(fields.get(key)):
                self.unused.append(self._at("warning", loc + (key,), f"Unused key {key}", key=True))
        validate = getattr(self, f"_validate_{name}", None)
        if validate:
            validate(data, loc)
        result: dict = {}
        for spec in S[name]:
            key, json_key, kind = spec[:3]
            if json_key is None or data.get(key) is None or not self._known(spec):
                continue
            self.origins[out + (json_key,)] = loc + (key,)
            value = self.value(kind, data[key], loc + (key,), out + (json_key,))
            if value is not None and value != {} and value != []:
                result[json_key] = value
        sugar = getattr(self, f"_sugar_{name}", None)
        return sugar(data, loc, out, result) if sugar else result

    # -- Butane's checks of the source ---------------------------------------------------------------
    def _exclusive(self, data: dict, loc: Loc, names: tuple[str, ...], message: str) -> None:
        present = [n for n in names if data.get(n) is not None]
        if len(present) > 1:
            self.check("error", loc + (present[-1],), message)

    def _validate_Resource(self, data: dict, loc: Loc) -> None:
        self._exclusive(data, loc, ("local", "inline", "source"), m.TOO_MANY_SOURCES)

    def _validate_Unit(self, data: dict, loc: Loc) -> None:
        if self._known(("contents_local", None, "str", "3.4.0")):
            self._exclusive(data, loc, ("contents", "contents_local"), m.TOO_MANY_SYSTEMD_SOURCES)

    _validate_Dropin = _validate_Unit

    def _validate_File(self, data: dict, loc: Loc) -> None:
        self._decimal_mode(data.get("mode"), loc + ("mode",), directory=False)

    def _validate_Directory(self, data: dict, loc: Loc) -> None:
        self._decimal_mode(data.get("mode"), loc + ("mode",), directory=True)

    def _decimal_mode(self, mode, loc: Loc, directory: bool) -> None:
        """Butane's hint for `mode: 644`: the digits make sense as octal, the decimal value does not."""
        if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 7777:
            return
        digits = f"{mode:04d}"
        if set(digits) - set("01234567"):
            return
        if not typical_mode(mode, directory) and typical_mode(int(digits, 8), directory):
            self.check("warning", loc, m.DECIMAL_MODE)

    def _validate_Filesystem(self, data: dict, loc: Loc) -> None:
        if yaml_bool(data.get("with_mount_unit")) is not True:
            return
        if not data.get("format"):
            self.check("error", loc + ("format",), m.MOUNT_UNIT_NO_FORMAT)
        elif data["format"] != "swap" and not data.get("path"):
            self.check("error", loc + ("path",), m.MOUNT_UNIT_NO_PATH)

    def _validate_Tree(self, data: dict, loc: Loc) -> None:
        if not data.get("local"):
            self.check("error", loc, m.TREE_NO_LOCAL)

    # -- sugar -------------------------------------------------------------------------------------
    def _read_local(self, rel: str, loc: Loc) -> bytes | None:
        if self.files_dir is None:
            return self.failed(loc, m.NO_FILES_DIR)
        root = os.path.abspath(self.files_dir)
        target = os.path.abspath(os.path.join(root, rel))
        if target != root and not target.startswith(root + os.sep):
            return self.failed(loc, m.FILES_DIR_ESCAPE)
        try:
            return Path(target).read_bytes()
        except OSError as exc:
            shown = os.path.normpath(os.path.join(str(self.files_dir), rel))
            return self.failed(loc, f"open {shown}: {exc.strerror.lower() if exc.strerror else exc}")

    def _sugar_Resource(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        for key in ("local", "inline"):
            if data.get(key) is None:
                continue
            if key == "inline":
                payload = str(self.scalar("str", data[key], loc + (key,))).encode()
            else:
                payload = self._read_local(str(data[key]), loc + (key,))
            if payload is None:
                return result
            self.origins[out + ("source",)] = loc + (key,)
            result = with_contents(result, payload, result.get("compression"))
        return result

    def _sugar_Unit(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        return self._contents_local("Unit", data, loc, out, result)

    def _sugar_Dropin(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        return self._contents_local("Dropin", data, loc, out, result)

    def _contents_local(self, name: str, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        if self._known(("contents_local", None, "str", "3.4.0")) and data.get("contents_local"):
            text = self._read_local(str(data["contents_local"]), loc + ("contents_local",))
            if text is not None:
                self.origins[out + ("contents",)] = loc + ("contents_local",)
                result = in_spec_order(name, {**result, "contents": text.decode()})
        return result

    def _sugar_User(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        locals_ = data.get("ssh_authorized_keys_local") if self.version >= "3.4.0" else None
        if not isinstance(locals_, list) or not locals_:
            return result
        if self.files_dir is None:
            self.failed(loc + ("ssh_authorized_keys_local",), m.NO_FILES_DIR)
            return result
        keys = list(result.get("sshAuthorizedKeys", []))
        for i, rel in enumerate(locals_):
            text = self._read_local(str(rel), loc + ("ssh_authorized_keys_local", i))
            for line in re.split(r"\r?\n", text.decode()) if text is not None else []:
                if line:
                    self.origins[out + ("sshAuthorizedKeys", len(keys))] = loc + ("ssh_authorized_keys_local", i)
                    keys.append(line)
        return in_spec_order("User", {**result, "sshAuthorizedKeys": keys}) if keys else result

    def _sugar_Storage(self, data: dict, loc: Loc, out: Loc, result: dict) -> dict:
        trees = data.get("trees")
        for i, tree in enumerate(trees if isinstance(trees, list) else []):
            self.struct("Tree", tree, loc + ("trees", i))
            self.trees.append((loc + ("trees", i), tree if isinstance(tree, dict) else {}))
        return result

    # -- generated mount units -----------------------------------------------------------------------
    def add_mount_units(self, config: dict, storage) -> None:
        generated = mount_units(storage) if isinstance(storage, dict) else []
        if not generated:
            return
        user = config.get("systemd", {}).get("units", [])
        merged, sources = merge_units([g.unit for g in generated], user)
        prefix = ("systemd", "units")
        moved = {k: v for k, v in self.origins.items() if k[:2] == prefix and len(k) > 2}
        for k in moved:
            del self.origins[k]
        for new, old in enumerate(sources):
            if old is not None:
                self.origins.update({prefix + (new,) + k[3:]: v for k, v in moved.items() if k[2] == old})
            else:
                unit_loc = ("storage", "filesystems", generated[new].filesystem, "with_mount_unit")
                self.origins[prefix + (new,)] = unit_loc
                self.common.add(prefix + (new,))
        self.origins.setdefault(("systemd",), ("storage", "filesystems"))
        self.origins.setdefault(prefix, ("storage", "filesystems"))
        config["systemd"] = {**config.get("systemd", {}), "units": merged}

    # -- trees -------------------------------------------------------------------------------------
    def expand_trees(self, config: dict) -> None:
        for loc, tree in self.trees:
            if self.files_dir is None:
                self.failed(loc, m.NO_FILES_DIR)
                break
            root = os.path.join(self.files_dir, str(tree.get("local") or ""))
            base = os.path.abspath(self.files_dir)
            if os.path.abspath(root) != base and not os.path.abspath(root).startswith(base + os.sep):
                self.failed(loc, m.FILES_DIR_ESCAPE)
                continue
            if not os.path.exists(root):
                self.failed(loc, f"stat {root}: no such file or directory")
                continue
            if not os.path.isdir(root):
                self.failed(loc, m.TREE_NOT_DIRECTORY)
                continue
            walker = TreeWalker(config.setdefault("storage", {}), self.origins, loc,
                                lambda message, loc=loc: self.failed(loc, message))
            walker.walk(Path(root), str(tree.get("path") or "/"))
        storage = config.get("storage")
        if storage is not None:
            config["storage"] = in_spec_order("Storage", {k: v for k, v in storage.items() if v})
            if not config["storage"]:
                del config["storage"]


def typical_mode(mode: int, directory: bool) -> bool:
    """Butane's idea of a mode someone would mean: each more specific class has every bit of the
    less specific ones, nothing writable or executable without read, special bits only where they
    make sense."""
    if mode == 0:
        return True
    had_r = had_w = had_x = False
    for perm in (mode & 0o7, (mode >> 3) & 0o7, (mode >> 6) & 0o7):
        r, w, x = bool(perm & 4), bool(perm & 2), bool(perm & 1)
        if (had_r and not r) or (had_w and not w) or (had_x and not x):
            return False
        if x and had_r and not had_x:
            return False
        if (w or x) and not r:
            return False
        had_r, had_w, had_x = had_r or r, had_w or w, had_x or x
    if not had_r:
        return False
    if directory:
        return had_x and not mode & 0o4000 and not (mode & 0o3000 and not had_w)
    if mode & 0o6000 and (not had_x or mode & 0o2):
        return False
    return not mode & 0o1000


def _go(kind) -> str:
    return GO_TYPES.get(kind, kind) if isinstance(kind, str) else "[]" + _go(kind[0])
