"""Go's text/template, the part Matchbox data dirs use, with Go's semantics (see docs/commands.md, serve).

    render(text, data, name="") -> str      raises TemplateError (parse and execution errors alike)

Data is what encoding/json decodes (numbers become float64, as in Matchbox); a missing map key is an
error (Matchbox's missingkey=error). A bottom module: imports nothing else from app.
"""

from __future__ import annotations

from app.gotemplate.errors import TemplateError
from app.gotemplate.exec import Limits, execute
from app.gotemplate.funcs import NAMES
from app.gotemplate.gofmt import format_one
from app.gotemplate.parser import parse
from app.gotemplate.values import StringMap, normalize

__all__ = ["Limits", "StringMap", "TemplateError", "go_value", "render"]


DEFAULT_LIMITS = Limits()


def render(text: str, data, *, name: str = "", limits: Limits = DEFAULT_LIMITS) -> str:
    try:
        trees = parse(name, text, NAMES)
        return execute(name, text, trees, normalize(data), limits)
    except RecursionError:
        raise TemplateError(f"template: {name}: nested too deeply") from None


def go_value(value) -> str:
    """fmt's %v of a value as encoding/json would decode it (1234567 -> 1.234567e+06)."""
    return format_one(normalize(value), "v", None)
