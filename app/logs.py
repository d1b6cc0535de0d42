"""Log lines: readable text on a terminal, or one JSON object per line (`--log-format json`).

Strings from the network (MACs, callback messages, file names, dnsmasq's lines) reach these lines
and the CLI's tables; `terminal_safe` is how every one of them is made harmless to a terminal: an
ESC sequence could repaint the screen and a `\\r\\n` could forge a line of its own.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from enum import Enum


class LogFormat(str, Enum):
    text = "text"
    json = "json"

# C0 controls (tab and newline included: one message is one line), DEL and the C1 controls (a
# terminal reads U+009B as ESC [); and the bidirectional overrides that reorder what is shown.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def terminal_safe(text: str) -> str:
    """`text` with every control character spelled out (`\\x1b`, `\\r`, `\\n`): shown, never obeyed."""
    return _UNSAFE.sub(_spelled, text)


def _spelled(match: re.Match) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


class TextFormatter(logging.Formatter):
    """The classic text line, its message made terminal-safe (a traceback, our own text, stays as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = terminal_safe(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)  # JSON escapes every control character itself


def setup(fmt: str = LogFormat.text, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
