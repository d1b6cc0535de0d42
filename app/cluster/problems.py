"""A problem found in cluster.yaml, and the three ways `validate` prints them."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

from app.yaml_source import Loc, Source

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Severity = "error"

    def text(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        tag = "warning: " if self.severity == "warning" else ""
        return f"{where}: {tag}{self.path + ': ' if self.path else ''}{self.message}"

    def github(self) -> str:
        level = "error" if self.severity == "error" else "warning"
        # GitHub's workflow commands need %, CR and LF escaped in the message.
        msg = f"{self.path}: {self.message}" if self.path else self.message
        msg = msg.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::{level} file={self.file},line={self.line},col={self.column}::{msg}"


def render(problems: list[Problem], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(p) for p in problems], indent=2)
    lines = [p.github() if fmt == "github" else p.text() for p in problems]
    return "\n".join(lines)


def format_loc(loc: tuple) -> str:
    """('nodes', 2, 'mac') -> 'nodes[2].mac'"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Found:
    """Collects problems, placing each at the source position of the field it is about."""

    def __init__(self, source: Source, file: str):
        self.source, self.file, self.items = source, file, []

    def add(self, loc: Loc, message: str, *, severity: Severity = "error", key: bool = False) -> None:
        pos = self.source.pos(loc, key=key)
        self.items.append(Problem(self.file, pos.line, pos.column, format_loc(loc), message, severity))

    def warn(self, loc: Loc, message: str) -> None:
        self.add(loc, message, severity="warning")
