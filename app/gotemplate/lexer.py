"""Go text/template's lexer: the template text as a list of items, ending in EOF or one ERROR item.

Go lexes lazily while parsing; lexing eagerly and stopping at the first error hands the parser the
same items in the same order, so its errors come out the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

LEFT, RIGHT = "{{", "}}"
LEFT_COMMENT, RIGHT_COMMENT = "/*", "*/"
SPACE_CHARS = " \t\r\n"
# After one of these a field, variable or identifier ends (Go's atTerminator).
TERMINATORS = set(SPACE_CHARS) | set(".,|:()")


class T(Enum):
    ERROR = auto()
    BOOL = auto()
    CHAR = auto()
    CHAR_CONSTANT = auto()
    ASSIGN = auto()
    DECLARE = auto()
    EOF = auto()
    FIELD = auto()
    IDENTIFIER = auto()
    LEFT_DELIM = auto()
    LEFT_PAREN = auto()
    NUMBER = auto()
    PIPE = auto()
    RAW_STRING = auto()
    RIGHT_DELIM = auto()
    RIGHT_PAREN = auto()
    SPACE = auto()
    STRING = auto()
    TEXT = auto()
    VARIABLE = auto()
    # keywords
    BLOCK = auto()
    BREAK = auto()
    CONTINUE = auto()
    DOT = auto()
    DEFINE = auto()
    ELSE = auto()
    END = auto()
    IF = auto()
    NIL = auto()
    RANGE = auto()
    TEMPLATE = auto()
    WITH = auto()


KEYWORDS = {"block": T.BLOCK, "break": T.BREAK, "continue": T.CONTINUE, "define": T.DEFINE, "else": T.ELSE,
            "end": T.END, "if": T.IF, "nil": T.NIL, "range": T.RANGE, "template": T.TEMPLATE, "with": T.WITH,
            ".": T.DOT}
KEYWORD_TYPES = set(KEYWORDS.values())


@dataclass(frozen=True)
class Item:
    typ: T
    pos: int
    val: str
    line: int

    def __str__(self) -> str:
        """As Go quotes a token in "unexpected X in Y"."""
        if self.typ is T.EOF:
            return "EOF"
        if self.typ is T.ERROR:
            return self.val
        if self.typ in KEYWORD_TYPES:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return go_quote(self.val[:10]) + "..."
        return go_quote(self.val)


def go_quote(text: str) -> str:
    """Go's %q of a string (strconv.Quote) for the characters templates contain."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code > 0x7F and not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdigit()


class Lexer:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.start = 0
        self.line = 1
        self.start_line = 1
        self.items: list[Item] = []
        self.paren_depth = 0

    # --- helpers --------------------------------------------------------------------------------
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        if ch == "\n":
            self.line += 1
        return ch

    def backup(self) -> None:
        self.pos -= 1
        if self.text[self.pos] == "\n":
            self.line -= 1

    def accept(self, chars: str) -> bool:
        if self.peek() and self.peek() in chars:
            self.next()
            return True
        return False

    def accept_run(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.next()

    def emit(self, typ: T) -> None:
        self.items.append(Item(typ, self.start, self.text[self.start:self.pos], self.start_line))
        self.ignore()

    def ignore(self) -> None:
        self.start = self.pos
        self.start_line = self.line

    def error(self, message: str) -> bool:
        self.items.append(Item(T.ERROR, self.start, message, self.start_line))
        return False

    def at_terminator(self) -> bool:
        ch = self.peek()
        return ch == "" or ch in TERMINATORS or self.text.startswith(RIGHT, self.pos)

    def at_right_delim(self) -> tuple[bool, bool]:
        if has_right_trim(self.text, self.pos) and self.text.startswith(RIGHT, self.pos + 2):
            return True, True
        return self.text.startswith(RIGHT, self.pos), False

    # --- states -------------------------------------------------------------------------------
    def run(self) -> list[Item]:
        while self.lex_text() and self.lex_action():
            pass
        return self.items

    def lex_text(self) -> bool:
        """Text up to the next "{{" (trimmed if it is "{{- "); False at the end of input."""
        x = self.text.find(LEFT, self.pos)
        if x < 0:
            self.pos = len(self.text)
            self.line += self.text.count("\n", self.start, self.pos)
            if self.pos > self.start:
                self.emit(T.TEXT)
            self.items.append(Item(T.EOF, self.pos, "", self.line))
            return False
        end = x
        if has_left_trim(self.text, x + len(LEFT)):
            end = len(self.text[self.start:x].rstrip(SPACE_CHARS)) + self.start
        self.line += self.text.count("\n", self.start, x)
        if end > self.start:
            self.items.append(Item(T.TEXT, self.start, self.text[self.start:end], self.start_line))
        self.pos = self.start = x
        self.start_line = self.line
        return True

    def lex_action(self) -> bool:
        """From "{{" through "}}" (or a comment); False after an error."""
        self.pos += len(LEFT)
        trim = has_left_trim(self.text, self.pos)
        after_marker = 2 if trim else 0
        if self.text.startswith(LEFT_COMMENT, self.pos + after_marker):
            self.pos += after_marker
            self.ignore()
            return self.lex_comment()
        self.emit(T.LEFT_DELIM)
        self.pos += after_marker
        self.ignore()
        self.paren_depth = 0
        while True:
            delim, _ = self.at_right_delim()
            if delim:
                if self.paren_depth:
                    return self.error("unclosed left paren")
                self.lex_right_delim()
                return True
            if not self.lex_inside_action():
                return False

    def lex_comment(self) -> bool:
        self.pos += len(LEFT_COMMENT)
        x = self.text.find(RIGHT_COMMENT, self.pos)
        if x < 0:
            return self.error("unclosed comment")
        self.pos = x + len(RIGHT_COMMENT)
        delim, trim = self.at_right_delim()
        if not delim:
            return self.error("comment ends before closing delimiter")
        self.line += self.text.count("\n", self.start, self.pos)
        self.pos += (2 if trim else 0) + len(RIGHT)
        if trim:
            self.skip_leading_space()
        self.start, self.start_line = self.pos, self.line
        return True

    def skip_leading_space(self) -> None:
        rest = self.text[self.pos:]
        skipped = len(rest) - len(rest.lstrip(SPACE_CHARS))
        self.line += rest.count("\n", 0, skipped)
        self.pos += skipped

    def lex_right_delim(self) -> None:
        _, trim = self.at_right_delim()
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(RIGHT)
        self.emit(T.RIGHT_DELIM)
        if trim:
            self.skip_leading_space()
            self.ignore()

    def lex_inside_action(self) -> bool:
        ch = self.next()
        if ch == "":
            return self.error("unclosed action")
        if ch in SPACE_CHARS:
            self.backup()
            return self.lex_space()
        simple = {"=": T.ASSIGN, "|": T.PIPE}
        if ch in simple:
            self.emit(simple[ch])
        elif ch == ":":
            if self.next() != "=":
                return self.error("expected :=")
            self.emit(T.DECLARE)
        elif ch == '"':
            return self.lex_quote('"', T.STRING, "unterminated quoted string")
        elif ch == "`":
            return self.lex_raw_quote()
        elif ch == "$":
            return self.lex_field_or_variable(T.VARIABLE)
        elif ch == "'":
            return self.lex_quote("'", T.CHAR_CONSTANT, "unterminated character constant")
        elif ch == "." and not (self.peek() and "0" <= self.peek() <= "9"):
            return self.lex_field_or_variable(T.FIELD)
        elif ch in "+-." or "0" <= ch <= "9":
            self.backup()
            return self.lex_number()
        elif is_alnum(ch):
            self.backup()
            return self.lex_identifier()
        elif ch == "(":
            self.paren_depth += 1
            self.emit(T.LEFT_PAREN)
        elif ch == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self.error("unexpected right paren")
            self.emit(T.RIGHT_PAREN)
        elif ord(ch) < 0x80 and ch.isprintable():
            self.emit(T.CHAR)
        else:
            return self.error(f"unrecognized character in action: U+{ord(ch):04X} {go_quote_rune(ch)}")
        return True

    def lex_space(self) -> bool:
        spaces = 0
        while self.peek() and self.peek() in SPACE_CHARS:
            self.next()
            spaces += 1
        # " -}}": the space belongs to the trim marker.
        if has_right_trim(self.text, self.pos - 1) and self.text.startswith(RIGHT, self.pos + 1):
            self.backup()
            if spaces == 1:
                return True
        self.emit(T.SPACE)
        return True

    def lex_identifier(self) -> bool:
        while is_alnum(self.peek()):
            self.next()
        word = self.text[self.start:self.pos]
        if not self.at_terminator():
            return self.bad_character()
        if word in KEYWORDS:
            self.emit(KEYWORDS[word])
        elif word in ("true", "false"):
            self.emit(T.BOOL)
        else:
            self.emit(T.IDENTIFIER)
        return True

    def lex_field_or_variable(self, typ: T) -> bool:
        if self.at_terminator():
            self.emit(T.VARIABLE if typ is T.VARIABLE else T.DOT)
            return True
        while is_alnum(self.peek()):
            self.next()
        if not self.at_terminator():
            return self.bad_character()
        self.emit(typ)
        return True

    def bad_character(self) -> bool:
        ch = self.next()
        return self.error(f"bad character U+{ord(ch):04X} {go_quote_rune(ch)}" if ch else "unclosed action")

    def lex_quote(self, quote: str, typ: T, unterminated: str) -> bool:
        while True:
            ch = self.next()
            if ch == "\\":
                ch = self.next()
                if ch not in ("", "\n"):
                    continue
            if ch in ("", "\n"):
                return self.error(unterminated)
            if ch == quote:
                self.emit(typ)
                return True

    def lex_raw_quote(self) -> bool:
        end = self.text.find("`", self.pos)
        if end < 0:
            return self.error("unterminated raw quoted string")
        while self.pos <= end:
            self.next()
        self.emit(T.RAW_STRING)
        return True

    def lex_number(self) -> bool:
        if not self.scan_number():
            return self.error(f"bad number syntax: {go_quote(self.text[self.start:self.pos])}")
        if self.peek() and self.peek() in "+-":
            # Complex constants (1+2i) are not supported; Go would accept them.
            self.scan_number()
            return self.error(f"bad number syntax: {go_quote(self.text[self.start:self.pos])}")
        self.emit(T.NUMBER)
        return True

    def scan_number(self) -> bool:
        self.accept("+-")
        digits = "0123456789_"
        if self.accept("0"):
            if self.accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self.accept("oO"):
                digits = "01234567_"
            elif self.accept("bB"):
                digits = "01_"
        self.accept_run(digits)
        if self.accept("."):
            self.accept_run(digits)
        if len(digits) == 11 and self.accept("eE"):
            self.accept("+-")
            self.accept_run("0123456789_")
        if len(digits) == 23 and self.accept("pP"):
            self.accept("+-")
            self.accept_run("0123456789_")
        self.accept("i")
        if is_alnum(self.peek()):
            self.next()
            return False
        return True


def go_quote_rune(ch: str) -> str:
    return "'" + go_quote(ch)[1:-1].replace('\\"', '"').replace("'", "\\'") + "'"


def has_left_trim(text: str, pos: int) -> bool:
    return text[pos:pos + 1] == "-" and text[pos + 1:pos + 2] in tuple(SPACE_CHARS)


def has_right_trim(text: str, pos: int) -> bool:
    return text[pos:pos + 1] in tuple(SPACE_CHARS) and text[pos + 1:pos + 2] == "-"


def lex(text: str) -> list[Item]:
    return Lexer(text).run()
