"""The one exception the package raises."""

from __future__ import annotations


class TemplateError(Exception):
    """A template that does not parse, or fails while executing; `line` is where (0 if unknown)."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(message)
        self.line = line
