"""YAML loading that remembers where every key and value came from.

Validation messages must name the file, line and column of the offending field, so we build plain
Python data from PyYAML's node graph ourselves and keep a map from field path to source position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Any

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Pos:
    line: int  # 1-based
    column: int  # 1-based


class SourceError(Exception):
    """The file cannot be read as YAML at all (exit code 2)."""

    def __init__(self, message: str, pos: Pos | None = None, problem: str | None = None):
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.problem = problem or message  # the parser's own words, without our prefix


@dataclass
class Source:
    """Parsed YAML plus positions: `values[loc]` is where a value starts, `keys[loc]` its key."""

    path: Path
    data: Any
    values: dict[Loc, Pos] = field(default_factory=dict)
    keys: dict[Loc, Pos] = field(default_factory=dict)
    duplicates: list[tuple[Loc, Pos, Pos]] = field(default_factory=list)

    def pos(self, loc: Loc, *, key: bool = False) -> Pos:
        """The closest known position for `loc`, walking up to a parent when a field is missing."""
        table = self.keys if key else self.values
        for n in range(len(loc), -1, -1):
            found = table.get(loc[:n]) or self.values.get(loc[:n])
            if found:
                return found
        return Pos(1, 1)


def _mark(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, loader, source: Source):
        self.loader = loader
        self.source = source

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.source.values[loc] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, loc + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict:
        self.loader.flatten_mapping(node)  # resolve `<<:` merge keys like PyYAML does
        out: dict = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int)):
                raise SourceError("mapping keys must be plain strings", _mark(key_node))
            child = loc + (key,)
            if key in out:
                self.source.duplicates.append((child, _mark(key_node), self.source.keys[child]))
            self.source.keys[child] = _mark(key_node)
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        value = self.loader.construct_object(node)
        return _as_yaml12(value, node)


_OCTAL_12 = re.compile(r"0o[0-7]+")


def _as_yaml12(value: Any, node: yaml.ScalarNode) -> Any:
    """Undo the YAML 1.1 readings that YAML 1.2 parsers (go-yaml v3, editors) do not make.

    - `52:54:00:00:00:11` is a base-60 integer in 1.1: keep the text.
    - `yes`/`no`/`on`/`off` are booleans in 1.1: keep the text; only true/false are booleans.
    - `0o644` is a string in 1.1 but octal 420 in 1.2 (Butane accepts it for modes).
    """
    if node.style in ("'", '"', "|", ">"):  # quoted or block: always a string
        return value
    if isinstance(value, bool):
        return value if node.value.lower() in ("true", "false") else node.value
    if isinstance(value, (int, float)) and ":" in node.value:
        return node.value
    if isinstance(value, str) and _OCTAL_12.fullmatch(node.value):
        return int(node.value[2:], 8)
    return value


def load_source(path: Path) -> Source:
    """Read and parse `path`; raise SourceError when it is missing, unreadable or not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SourceError("file not found") from None
    except IsADirectoryError:
        raise SourceError("is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read: {exc}") from None
    return parse_source(text, path)


# LibYAML's parser when PyYAML was built with it (the wheels are): the same nodes and marks, and
# several times faster, which matters when generate translates two Butane documents per node.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_source(text: str, path: Path) -> Source:
    source = Source(path=path, data=None)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            source.data = _Builder(loader, source).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(mark.line + 1, mark.column + 1) if mark else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SourceError(f"YAML syntax error: {problem}", pos, str(exc.problem or problem)) from None
    except yaml.YAMLError as exc:
        raise SourceError(f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    return source
