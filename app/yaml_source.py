"""YAML loading that remembers where every key and value came from, within fixed limits.

Validation messages must name the file, line and column of the offending field, so we build plain
Python data from PyYAML's node graph ourselves and keep a map from field path to source position.

Hostile or broken input must end in a clear message, in bounded time and memory. LibYAML's event
parser keeps its own stack and copes with any nesting, but composing nodes recurses (in C for
PyYAML's own composer: 100,000 `[` overflow the C stack), and aliases let a few hundred bytes stand
for billions of nodes. So we compose nodes from LibYAML's events ourselves and refuse, before
building anything large: a file past `max_bytes`, nesting past `max_depth`, a document whose nodes
(each alias counted at the full size of what it stands for) pass `max_nodes`, a scalar past
`max_scalar_chars`, a number past `max_number_chars`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Limits:
    """What a YAML document may hold. A cluster.yaml for 5,000 nodes stays well inside each."""

    max_bytes: int = 1 << 20  # 1 MiB
    max_depth: int = 64  # mappings, lists and scalars inside each other
    max_nodes: int = 100_000  # every key, value and item; an alias counts as all it stands for
    max_scalar_chars: int = 256 << 10  # one key or value (Butane inlines whole files)
    max_number_chars: int = 100  # past ~4,300 digits Python refuses to read an integer at all


DEFAULT_LIMITS = Limits()


class Pos(NamedTuple):  # a tuple: one is made for every key and value, and tuples are cheap
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
    duplicates: list[tuple[Loc, Pos, Pos]] = field(default_factory=list)  # (key, first, repeated)

    def pos(self, loc: Loc, *, key: bool = False) -> Pos:
        """The closest known position for `loc`, walking up to a parent when a field is missing."""
        table = self.keys if key else self.values
        for n in range(len(loc), -1, -1):
            found = table.get(loc[:n]) or self.values.get(loc[:n])
            if found:
                return found
        return Pos(1, 1)


def _pos(mark) -> Pos:
    return Pos(mark.line + 1, mark.column + 1)


def _mark(node: yaml.Node) -> Pos:
    return _pos(node.start_mark)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_OCTAL_12 = re.compile(r"0o[0-7]+")


class _Composer:
    """Nodes from the parser's events, like PyYAML's composer, but counting depth and nodes as it
    goes and refusing past the limits. Mixed into a class that provides the events (LibYAML's or
    PyYAML's parser) and `resolve` (PyYAML's resolver).

    Each anchor remembers the size and height of its node, so an alias is charged in full the
    moment it is read: an alias bomb stops at the alias that crosses `max_nodes`, before anything
    is expanded. Collections keep no tag: the builder reads every mapping and list as plain data.
    """

    def init_limits(self, limits: Limits) -> None:
        self.limits = limits
        self.deepest = 0  # deepest level reached inside the node being composed
        self.nodes = 0
        self.open_anchors: set[str] = set()
        self.resolved: dict[tuple[str, tuple[bool, bool]], str] = {}
        self.anchors: dict[str, tuple[yaml.Node, int, int]] = {}  # anchor -> (node, nodes, height)

    def compose_single(self) -> yaml.Node | None:
        self.get_event()  # stream start
        if self.check_event(yaml.StreamEndEvent):
            return None
        self.get_event()  # document start
        node = self._node(1)
        self.get_event()  # document end
        if not self.check_event(yaml.StreamEndEvent):
            raise SourceError("expected a single document in the stream but found another document",
                              _pos(self.peek_event().start_mark))
        return node

    def _node(self, depth: int) -> yaml.Node:
        event = self.get_event()
        if type(event) is yaml.ScalarEvent and event.anchor is None:  # most nodes: the short way
            if depth > self.limits.max_depth:
                raise _too_deep(self.limits, event.start_mark)
            self._charge(1, event.start_mark)
            self.deepest = max(self.deepest, depth)
            return self._scalar(event)
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, depth)
        if depth > self.limits.max_depth:
            raise _too_deep(self.limits, event.start_mark)
        anchor = event.anchor
        if anchor in self.anchors or anchor in self.open_anchors:
            raise SourceError(f"anchor &{anchor} is defined twice", _pos(event.start_mark))
        nodes_before, outer_deepest = self.nodes, self.deepest
        self.deepest = depth
        if anchor is not None:
            self.open_anchors.add(anchor)
        node = self._scalar(event) if isinstance(event, yaml.ScalarEvent) else self._collection(event, depth)
        self._charge(1, event.start_mark)
        if anchor is not None:
            self.open_anchors.discard(anchor)
            self.anchors[anchor] = (node, self.nodes - nodes_before, self.deepest - depth + 1)
        self.deepest = max(outer_deepest, self.deepest)
        return node

    def _scalar(self, event: yaml.ScalarEvent) -> yaml.ScalarNode:
        limits, value = self.limits, event.value
        if len(value) > limits.max_scalar_chars:
            raise SourceError(f"a value of {len(value)} characters exceeds the limit of "
                              f"{limits.max_scalar_chars} characters", _pos(event.start_mark))
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(value, event.implicit)
        if len(value) > limits.max_number_chars and (
                tag in _NUMBER_TAGS or (event.style is None and _OCTAL_12.fullmatch(value))):
            raise SourceError(f"a number of {len(value)} characters exceeds the limit of "
                              f"{limits.max_number_chars} digits (quote it if it is text)", _pos(event.start_mark))
        return yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, style=event.style)

    def _resolve(self, value: str, implicit: tuple[bool, bool]) -> str:
        """The scalar's tag from its text, remembered: the same words recur on every node, and
        the resolver tries a list of regular expressions each time."""
        key = (value, implicit)
        tag = self.resolved.get(key)
        if tag is None:
            tag = self.resolved[key] = self.resolve(yaml.ScalarNode, value, implicit)
        return tag

    def _collection(self, event, depth: int) -> yaml.Node:
        items: list = []
        if isinstance(event, yaml.SequenceStartEvent):
            node = yaml.SequenceNode(None, items, event.start_mark, None)
            while not self.check_event(yaml.SequenceEndEvent):
                items.append(self._node(depth + 1))
        else:
            node = yaml.MappingNode(None, items, event.start_mark, None)
            while not self.check_event(yaml.MappingEndEvent):
                items.append((self._node(depth + 1), self._node(depth + 1)))
        node.end_mark = self.get_event().end_mark
        return node

    def _alias(self, event: yaml.AliasEvent, depth: int) -> yaml.Node:
        name, where = event.anchor, event.start_mark
        if name in self.open_anchors:
            raise SourceError(f"alias *{name} is used inside the node it names (a loop)", _pos(where))
        if name not in self.anchors:
            raise SourceError(f"alias *{name} names no anchor defined before it (&{name})", _pos(where))
        node, size, height = self.anchors[name]
        if depth + height - 1 > self.limits.max_depth:
            raise _too_deep(self.limits, where, f" (through alias *{name})")
        self.deepest = max(self.deepest, depth + height - 1)
        self._charge(size, where, f" (alias *{name} stands for {size} nodes)")
        return node

    def _charge(self, count: int, mark, why: str = "") -> None:
        self.nodes += count
        if self.nodes > self.limits.max_nodes:
            raise SourceError(f"the document exceeds the limit of {self.limits.max_nodes} nodes (keys, "
                              f"values and list items; each alias counts all it stands for){why}", _pos(mark))


def _too_deep(limits: Limits, mark, why: str = "") -> SourceError:
    return SourceError(f"nesting exceeds the limit of {limits.max_depth} levels of mappings and lists{why}",
                       _pos(mark))


def _loader_class() -> type:
    """The composer above on LibYAML's event parser when PyYAML has it (the wheels do): several
    times faster than PyYAML's own parser, which matters when generate translates two Butane
    documents per node. Neither parser recurses, whatever the nesting."""
    if getattr(yaml, "__with_libyaml__", False):
        from yaml._yaml import CParser as Parser

        class Loader(_Composer, Parser, SafeConstructor, Resolver):
            def __init__(self, text: str):
                Parser.__init__(self, text)
                SafeConstructor.__init__(self)
                Resolver.__init__(self)
        return Loader

    class PyLoader(_Composer, yaml.SafeLoader):
        pass
    return PyLoader


_Loader = _loader_class()


class _Builder:
    """Plain data from the checked node graph, recording every position on the way."""

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
        """Own keys first (a repeated one is reported), then keys from `<<:` merges that are not
        already set: merged defaults overridden by the node itself are the point of merge keys."""
        out: dict = {}
        merged = [value for key, value in node.value if key.tag == _MERGE_TAG]
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                self._entry(out, key_node, value_node, loc, report_repeat=True)
        for key_node, value_node in self._merged_pairs(merged):
            self._entry(out, key_node, value_node, loc, report_repeat=False)
        return out

    def _entry(self, out: dict, key_node, value_node, loc: Loc, *, report_repeat: bool) -> None:
        key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, (str, int)):
            raise SourceError("mapping keys must be plain strings", _mark(key_node))
        child = loc + (key,)
        if key in out:
            if not report_repeat:
                return
            self.source.duplicates.append((child, self.source.keys[child], _mark(key_node)))
        self.source.keys[child] = _mark(key_node)
        out[key] = self.build(value_node, child)

    def _merged_pairs(self, merges: list[yaml.Node]) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs `<<:` values bring, earlier ones first (the first mapping listed wins)."""
        pairs = []
        for value in merges:
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for mapping in sources:
                if not isinstance(mapping, yaml.MappingNode):
                    raise SourceError("a merge key `<<` takes a mapping (usually an alias like *defaults) "
                                      "or a list of them", _mark(mapping))
                own = [(k, v) for k, v in mapping.value if k.tag != _MERGE_TAG]
                pairs += own + self._merged_pairs([v for k, v in mapping.value if k.tag == _MERGE_TAG])
        return pairs

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if node.tag == _STR_TAG and not node.value.startswith("0o"):
            return node.value  # most values: what SafeConstructor would return, without its detour
        try:
            value = self.loader.construct_object(node)
        except (ValueError, TypeError, ArithmeticError, AttributeError):
            # an explicit tag on text it cannot read (`!!int abc`, `!!timestamp soon`)
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise SourceError(f"{node.value[:40]!r} cannot be read as {tag}", _mark(node)) from None
        return _as_yaml12(value, node)


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


def load_source(path: Path, limits: Limits = DEFAULT_LIMITS) -> Source:
    """Read and parse `path`; raise SourceError when it is missing, unreadable, too big or not YAML."""
    try:
        with path.open("rb") as f:
            raw = f.read(limits.max_bytes + 1)  # never more, whatever the file is (/dev/zero)
    except FileNotFoundError:
        raise SourceError("file not found") from None
    except IsADirectoryError:
        raise SourceError("is a directory, not a file") from None
    except OSError as exc:
        raise SourceError(f"cannot read: {exc}") from None
    _check_size(len(raw), limits)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_source(text, path, limits)


def indentation_hint(text: str, index: int) -> str:
    """Most syntax errors in a hand-edited file are indentation: the parser's words name the symptom,
    so say what the line at `index` (0-based) looks like next to the line above it."""
    lines = text.splitlines()
    if index >= len(lines):
        return ""
    line = lines[index]
    lead = line[:len(line) - len(line.lstrip())]
    if "\t" in lead:
        return f" (hint: line {index + 1} is indented with a tab; YAML indents with spaces only)"
    content = [i for i in range(index - 1, -1, -1) if lines[i].strip() and not lines[i].lstrip().startswith("#")]
    if not content:
        return ""
    here = len(lead)
    columns = []  # where a line here may start: the key column above, then each enclosing block's
    for i in content:
        start = len(lines[i]) - len(lines[i].lstrip())
        if not columns or start < min(columns):
            columns.append(start + 2 if lines[i].lstrip().startswith("- ") else start)  # an item's key: after "- "
            columns.append(start)
    previous, above, key = lines[content[0]].rstrip(), content[0] + 1, columns[0]
    if here in columns or (previous.endswith(":") and here > key):
        return ""
    return (f" (hint: check the indentation: line {index + 1} starts in column {here + 1}, the key on line "
            f"{above} in column {key + 1}; keys of one mapping line up in one column)")


def _check_size(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise SourceError(f"the file exceeds the limit of {limits.max_bytes} bytes")


def parse_source(text: str, path: Path, limits: Limits = DEFAULT_LIMITS) -> Source:
    """Parse YAML `text` (named `path` in messages) within `limits`; raise SourceError."""
    if len(text) > limits.max_bytes // 4:  # only then can the UTF-8 form pass the limit
        _check_size(len(text.encode("utf-8", "replace")), limits)
    source = Source(path=path, data=None)
    loader = _Loader(text)
    loader.init_limits(limits)
    try:
        node = loader.compose_single()
        if node is not None:
            source.data = _Builder(loader, source).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = _pos(mark) if mark else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        hint = indentation_hint(text, mark.line) if mark else ""
        raise SourceError(f"YAML syntax error: {problem}{hint}", pos, str(exc.problem or problem)) from None
    except yaml.YAMLError as exc:
        raise SourceError(f"YAML syntax error: {exc}") from None
    finally:
        loader.dispose()
    return source
