"""systemd unit syntax as Ignition checks it, and unit-name path escaping as Butane does it.

Ignition reads unit contents with go-systemd's lexer; whatever that lexer rejects, Butane rejects
("invalid unit content: ..."). Its quirks are part of the contract and are reproduced here: text
before the first section is skipped character by character, a section name runs to the next `]`
even across lines, an option line needs `=`, and a line is "too long" only when the reader's
4096-byte buffer happens to hold 2048 bytes without a newline at a step boundary.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

LINE_MAX = 2048
BUFFER_SIZE = 4096
SAFE = frozenset(b":_.abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class UnitSyntaxError(Exception):
    pass


@dataclass(frozen=True)
class Option:
    section: str
    name: str
    value: str


def path_escape(path: str) -> str:
    """`systemd-escape --path` as go-systemd spells it: bytes outside [A-Za-z0-9:_.] (and a leading
    `.`) become `\\x` + lowercase hex without zero padding; runs of `/` become one `-`, none at the
    ends; the root is `-`."""
    out: list[str] = []
    pending_dash = False
    for byte in path.encode():
        if byte == ord("/"):
            pending_dash = bool(out)
            continue
        if pending_dash:
            out.append("-")
            pending_dash = False
        if (not out and byte == ord(".")) or byte not in SAFE:
            out.append(f"\\x{byte:x}")
        else:
            out.append(chr(byte))
    return "".join(out) or "-"


def parse_unit(contents: str | None) -> list[Option]:
    """The unit's options, or UnitSyntaxError with go-systemd's words."""
    if contents is None:
        return []
    return _Lexer(contents.encode()).run()


class _Reader:
    """The read positions of Go's bufio.Reader over an in-memory string: which bytes are buffered
    decides when the line-length check runs."""

    def __init__(self, data: bytes):
        self.data, self.r, self.w, self.err = data, 0, 0, False

    def buffered(self) -> int:
        return self.w - self.r

    def fill(self) -> None:
        if self.w >= len(self.data):
            self.err = True  # the underlying reader reports EOF
        else:
            self.w = min(len(self.data), self.r + BUFFER_SIZE)

    def read_rune(self) -> str | None:
        while self.w - self.r < 4 and not _full_rune(self.data[self.r:self.w]) and not self.err \
                and self.w - self.r < BUFFER_SIZE:
            self.fill()
        if self.r == self.w:
            self.err = False
            return None
        rune, size = _decode_rune(self.data[self.r:self.w])
        self.r += size
        return rune

    def unread(self, rune: str) -> None:
        self.r -= len(rune.encode()) if rune != "\ufffd" else 1

    def read_until(self, delim: int) -> tuple[bytes, bool]:
        """Bytes up to and including `delim`, and whether the data ended first."""
        out = bytearray()
        searched = 0
        while True:
            idx = self.data.find(bytes([delim]), self.r + searched, self.w)
            if idx >= 0:
                out += self.data[self.r:idx + 1]
                self.r = idx + 1
                return bytes(out), False
            if self.err:
                out += self.data[self.r:self.w]
                self.r, self.err = self.w, False
                return bytes(out), True
            if self.buffered() >= BUFFER_SIZE:
                out += self.data[self.r:self.w]
                self.r, searched = self.w, 0
                continue
            searched = self.buffered()
            self.fill()


def _full_rune(data: bytes) -> bool:
    if not data:
        return False
    need = 1 if data[0] < 0xC0 else 2 if data[0] < 0xE0 else 3 if data[0] < 0xF0 else 4
    return len(data) >= need or _decode_rune(data)[0] == "\ufffd"


def _decode_rune(data: bytes) -> tuple[str, int]:
    for size in (1, 2, 3, 4):
        try:
            return data[:size].decode(), size
        except UnicodeDecodeError:
            continue
    return "\ufffd", 1


class _Lexer:
    def __init__(self, data: bytes):
        self.buf = _Reader(data)
        self.options: list[Option] = []

    def run(self) -> list[Option]:
        step = self.next_section
        while step is not None:
            if self.buf.buffered() >= LINE_MAX:
                ahead = self.buf.data[self.buf.r:self.buf.r + LINE_MAX]
                if b"\n" not in ahead and b"\r" not in ahead:
                    raise UnitSyntaxError(f"line too long (max {LINE_MAX} bytes)")
            step = step()
        return self.options

    def to_eol(self) -> tuple[bytes, bool]:
        # Go trims a final "\r" before the "\n": a CRLF line keeps its "\r" here.
        line, eof = self.buf.read_until(ord("\n"))
        return line.removesuffix(b"\r").removesuffix(b"\n"), eof

    def next_section(self):
        rune = self.buf.read_rune()
        if rune is None:
            return None
        if rune == "[":
            return self.section_name
        if rune in "#;":
            return self.skip_line(self.next_section)
        return self.next_section

    def section_name(self):
        name, eof = self.buf.read_until(ord("]"))
        if eof:
            raise UnitSyntaxError("unable to find end of section")
        section = name[:-1].decode(errors="replace")

        def suffix():
            garbage = self.to_eol()[0].strip()
            if garbage:
                raise UnitSyntaxError(f"found garbage after section name : {go_quote(garbage)}")
            return self.section_body(section)
        return suffix

    def skip_line(self, then):
        def step():
            while True:
                line = self.to_eol()[0].removesuffix(b" ")
                if not line.endswith(b"\\"):
                    return then
        return step

    def section_body(self, section: str):
        def step():
            rune = self.buf.read_rune()
            if rune is None:
                return None
            if _go_space(rune):
                return self.section_body(section)
            if rune == "[":
                return self.section_name
            if rune in "#;":
                return self.skip_line(self.section_body(section))
            self.buf.unread(rune)
            return self.option_name(section)
        return step

    def option_name(self, section: str):
        def step():
            name: list[str] = []
            while True:
                rune = self.buf.read_rune()
                if rune is None:
                    raise UnitSyntaxError("EOF")
                if rune in "\r\n":
                    raise UnitSyntaxError("unexpected newline encountered while parsing option name")
                if rune == "=":
                    break
                name.append(rune)
            return self.option_value(section, "".join(name).strip(), b"")
        return step

    def option_value(self, section: str, name: str, partial: bytes):
        def step():
            value = partial
            line, eof = self.to_eol()
            if line.strip():
                value += line
                if line.endswith(b"\\"):
                    return self.option_value(section, name, value + (b"" if eof else b"\n"))
            text = value.decode(errors="replace")
            text = text.strip() + "\n" if text.endswith("\n") else text.strip()
            self.options.append(Option(section, name, text))
            return self.section_body(section)
        return step


def _go_space(rune: str) -> bool:
    """Go's unicode.IsSpace (Python's isspace also counts U+001C..U+001F)."""
    return rune in "\t\n\v\f\r \x85\xa0" or (ord(rune) > 0xFF and unicodedata.category(rune) in ("Zs", "Zl", "Zp"))


def go_quote(data: bytes) -> str:
    """Go's %q of a byte string."""
    out = ['"']
    text = data.decode(errors="surrogateescape")
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code > 0x7F and unicodedata.category(ch)[0] in "CZ" and ch != " ":
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out) + '"'
