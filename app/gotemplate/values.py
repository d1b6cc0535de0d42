"""Go values as Python holds them, and how Go's fmt prints them.

A template sees what encoding/json decodes: None (nil), bool, float (float64: every JSON number),
str, list ([]interface {}) and dict (map[string]interface {}); StringMap is a map[string]string.
Python int stands only for Go's int: template literals such as 3 or 0x1F, and len's result.
"""

from __future__ import annotations

import math
from decimal import Decimal

from app.gotemplate.errors import TemplateError


class StringMap(dict):
    """A map[string]string (Matchbox's request.query): `index` of a missing key gives "", not nil."""


def normalize(value):
    """Data as encoding/json would have decoded it: every number a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, StringMap):
        return StringMap({str(k): str(v) for k, v in value.items()})
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    raise TemplateError(f"template data cannot hold a {type(value).__name__}")


def type_name(value) -> str:
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, StringMap):
        return "map[string]string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "[]interface {}"


def element_type(container) -> str:
    """The static type of what a map or slice holds, as Go names it in errors."""
    return "string" if isinstance(container, StringMap) else "interface {}"


def is_true(value) -> bool:
    """Go's truth: not the zero value of its type; nil is false."""
    if value is None:
        return False
    if isinstance(value, (bool, int, float)):
        return value != 0
    return len(value) > 0


def shortest_digits(number: float) -> tuple[str, int]:
    """The shortest digits that read back as `number` (Go and Python's repr find the same ones), and
    the decimal exponent of the first digit."""
    _, digits, exponent = Decimal(repr(abs(number))).as_tuple()
    text = "".join(map(str, digits)).lstrip("0")
    if not text:
        return "0", 0
    return text.rstrip("0"), len(text) + exponent - 1


def format_float_g(number: float) -> str:
    """%v of a float64: the shortest digits, in exponent form below 1e-4 and from 1e6 up (strconv's
    'g' with precision -1 decides with precision 6), so 1234567 prints 1.234567e+06."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, number) < 0 else ""
    digits, exp = shortest_digits(number)
    if digits == "0":
        return sign + "0"
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[:exp + 1]}.{digits[exp + 1:]}"
