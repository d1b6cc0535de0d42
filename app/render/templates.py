"""Jinja2 templates: the user's directory first, file by file, then the built-in ones.

A template error names the template file and line, wherever it came from.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path

import jinja2

PACKAGED = Path(__file__).resolve().parents[1] / "templates"  # app/templates, in the checkout and the wheel


def builtin_templates() -> Path:
    """The built-in templates: app/templates, or BOOTSTRAP_BUILTIN_TEMPLATES (the image adds the baked
    CNI and GitOps manifests there)."""
    return Path(os.environ.get("BOOTSTRAP_BUILTIN_TEMPLATES") or PACKAGED)


class TemplateError(Exception):
    """A template failed to load or render; the message starts with `file:line:`."""


class Templates:
    def __init__(self, override: Path | None = None):
        builtin = builtin_templates()
        dirs = [d for d in (override, builtin) if d is not None and d.is_dir()]
        if override is not None and builtin.is_dir() and builtin.resolve() == override.resolve():
            dirs = [builtin]
        self.dirs = dirs
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
                                      undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                      autoescape=False)

    def origin(self, name: str) -> str:
        """The file a template name resolves to, for messages."""
        for d in self.dirs:
            if (d / name).is_file():
                return str(d / name)
        return name

    def render(self, name: str, variables: dict) -> str:
        try:
            return self.env.get_template(name).render(**variables)
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or self.origin(name)
            raise TemplateError(f"{where}:{exc.lineno}: template syntax error: {exc.message}") from None
        except jinja2.TemplateNotFound as exc:
            searched = ", ".join(map(str, self.dirs))
            raise TemplateError(f"{name}: template {exc.name!r} not found in {searched}") from None
        except Exception as exc:  # noqa: BLE001 - any render failure becomes file:line: message
            raise TemplateError(f"{_failing_line(exc, self.origin(name))}: {type(exc).__name__}: {exc}") from None


def _failing_line(exc: Exception, fallback: str) -> str:
    """Jinja rewrites tracebacks so template frames carry the template's file and line."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".tmpl"):
            return f"{frame.filename}:{frame.lineno}"
    return fallback
