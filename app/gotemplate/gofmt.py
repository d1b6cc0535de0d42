"""The part of Go's fmt that templates reach: %v of every value, and printf's verbs
%v %s %q %d %x %X %o %b %c %U %e %E %f %F %g %G %t %% with flags (+ - # space 0), width and precision
(digits or *), and Go's complaints in place: %!d(string=x), %!s(MISSING), %!(EXTRA int=3), %!(NOVERB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.gotemplate.lexer import go_quote
from app.gotemplate.values import StringMap, format_float_g, type_name

FLAGS = "+-# 0"
MAX_WIDTH = 100_000  # a hostile template must not make printf allocate gigabytes


@dataclass
class Spec:
    plus: bool = False
    minus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    width: int | None = None
    prec: int | None = None


PLAIN = Spec()


def format_one(value, verb: str, spec: Spec | None) -> str:
    spec = spec or PLAIN
    if verb == "T":
        return pad(type_name(value), spec)
    if isinstance(value, list):
        return "[" + " ".join(format_one(v, verb, spec) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{format_one(k, verb, spec)}:{format_one(value[k], verb, spec)}" for k in sorted(value))
        return "map[" + " ".join(items) + "]"
    if value is None:
        return pad("<nil>", spec) if verb == "v" else f"%!{verb}(<nil>)"
    if isinstance(value, bool):
        return pad("true" if value else "false", spec) if verb in "vt" else bad_verb(value, verb)
    if isinstance(value, int):
        return format_int(value, verb, spec)
    if isinstance(value, float):
        return format_float(value, verb, spec)
    return format_str(value, verb, spec)


def bad_verb(value, verb: str) -> str:
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(value)}={format_one(value, 'v', None)})"


def pad(text: str, spec: Spec, zero_ok: bool = False) -> str:
    if spec.width is None or len(text) >= spec.width:
        return text
    fill = spec.width - len(text)
    if spec.minus:
        return text + " " * fill
    if spec.zero and zero_ok:
        sign = text[0] if text[:1] in ("+", "-", " ") else ""
        return sign + "0" * fill + text[len(sign):]
    return " " * fill + text


def signed(text: str, negative: bool, spec: Spec) -> str:
    if negative:
        return "-" + text
    return ("+" if spec.plus else " " if spec.space else "") + text


def format_int(value: int, verb: str, spec: Spec) -> str:
    bases = {"d": (10, ""), "v": (10, ""), "b": (2, "0b"), "o": (8, "0"), "O": (8, "0o"), "x": (16, "0x"),
             "X": (16, "0X")}
    if verb == "c":
        return pad(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", spec)
    if verb == "q":
        return pad("'" + go_quote(chr(value))[1:-1].replace('\\"', '"').replace("'", "\\'") + "'", spec)
    if verb == "U":
        return pad(f"U+{value:04X}", spec)
    if verb not in bases:
        return bad_verb(value, verb)
    base, prefix = bases[verb]
    digits = {2: "b", 8: "o", 10: "d", 16: "x"}[base]
    text = format(abs(value), digits).upper() if verb == "X" else format(abs(value), digits)
    if spec.prec is not None:
        text = text.zfill(spec.prec) if spec.prec or value else ""
    if (spec.sharp and verb in "boxX") or verb == "O":
        text = prefix + text
    return pad(signed(text, value < 0, spec), spec, zero_ok=spec.prec is None)


def format_float(value: float, verb: str, spec: Spec) -> str:
    if verb not in "vgGeEfFxX":
        return bad_verb(value, verb)
    if math.isinf(value) or math.isnan(value):
        text = "NaN" if math.isnan(value) else "Inf"
        return pad(signed(text, value < 0, spec) if text == "Inf" and (value < 0 or spec.plus or verb == "v")
                   else text, spec)
    negative = math.copysign(1.0, value) < 0
    magnitude = abs(value)
    if verb in "xX":
        text = hex_float(magnitude, spec.prec)
        text = text.upper() if verb == "X" else text
    elif verb in "vgG" and spec.prec is None:
        text = format_float_g(magnitude)
    elif verb in "vgG":
        text = format(magnitude, f".{spec.prec or 1}g")
    else:
        text = format(magnitude, f".{6 if spec.prec is None else spec.prec}{verb.lower()}")
    if verb in "GEF":
        text = text.upper()
    return pad(signed(text, negative, spec), spec, zero_ok=True)


def hex_float(magnitude: float, prec: int | None) -> str:
    """Go's %x of a float64: 0x1.8p+01 (shortest mantissa, exponent of at least two digits)."""
    if magnitude == 0:
        return "0x0p+00"
    mantissa, exponent = magnitude.hex()[2:].split("p")
    mantissa = mantissa.rstrip("0").rstrip(".")
    if prec is not None:
        whole, _, frac = mantissa.partition(".")
        mantissa = whole + ("." + frac[:prec].ljust(prec, "0") if prec else "")
    exp = int(exponent)
    return f"0x{mantissa}p{'-' if exp < 0 else '+'}{abs(exp):02d}"


def format_str(value: str, verb: str, spec: Spec) -> str:
    if verb in "vs":
        return pad(value if spec.prec is None else value[:spec.prec], spec, zero_ok=True)
    if verb == "q":
        return pad(go_quote(value if spec.prec is None else value[:spec.prec]), spec)
    if verb in "xX":
        text = value.encode().hex()
        return pad(text.upper() if verb == "X" else text, spec)
    return bad_verb(value, verb)


def sprintf(fmt: str, args: list) -> str:
    out: list[str] = []
    used = 0
    i = 0
    while i < len(fmt):
        pct = fmt.find("%", i)
        if pct < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:pct])
        i = pct + 1
        spec = Spec()
        while i < len(fmt) and fmt[i] in FLAGS:
            setattr(spec, {"+": "plus", "-": "minus", "#": "sharp", " ": "space", "0": "zero"}[fmt[i]], True)
            i += 1
        i, used, spec.width, bad = number_or_star(fmt, i, args, used)
        if bad:
            out.append("%!(BADWIDTH)")
        if spec.width is not None and spec.width < 0:
            spec.minus, spec.width = True, -spec.width
        if i < len(fmt) and fmt[i] == ".":
            i, used, spec.prec, bad = number_or_star(fmt, i + 1, args, used)
            if bad or (spec.prec is not None and spec.prec < 0):
                out.append("%!(BADPREC)") if bad else None
                spec.prec = None
            elif spec.prec is None:
                spec.prec = 0
        if max(spec.width or 0, spec.prec or 0) > MAX_WIDTH:
            raise ValueError(f"width or precision over {MAX_WIDTH}")
        if i >= len(fmt):
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(format_one(args[used], verb, spec))
            used += 1
    if used < len(args):
        extra = ", ".join("<nil>" if a is None else f"{type_name(a)}={format_one(a, 'v', None)}"
                          for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def number_or_star(fmt: str, i: int, args: list, used: int) -> tuple[int, int, int | None, bool]:
    """A width or precision at fmt[i]: digits, or * taking an int argument."""
    if i < len(fmt) and fmt[i] == "*":
        if used < len(args) and isinstance(args[used], int) and not isinstance(args[used], bool):
            return i + 1, used + 1, args[used], False
        return i + 1, used + 1, None, True
    start = i
    while i < len(fmt) and fmt[i].isdigit() and fmt[i].isascii():
        i += 1
    return i, used, int(fmt[start:i]) if i > start else None, False


__all__ = ["StringMap", "format_one", "sprintf"]


def format_value(value, verb: str = "v") -> str:
    """fmt's %v (and %s etc. reach composites through here): maps with sorted keys, slices in []."""
    return format_one(value, verb, None)


def sprint(args: list) -> str:
    """fmt.Sprint: a space between operands when neither side is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(format_value(arg))
    return "".join(out)


def sprintln(args: list) -> str:
    return " ".join(format_value(a) for a in args) + "\n"
