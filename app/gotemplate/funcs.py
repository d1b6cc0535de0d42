"""text/template's built-in functions on Go values as values.py holds them.

A function that fails raises FuncError; the executor reports it as Go does: "error calling NAME: …".
"""

from __future__ import annotations

import urllib.parse

from app.gotemplate.gofmt import format_one, sprint, sprintf, sprintln
from app.gotemplate.values import StringMap, is_true, type_name


class FuncError(Exception):
    pass


# name -> (number of fixed parameters, variadic?). and/or are special: evaluated lazily by the executor.
SIGNATURES = {"and": (1, True), "or": (1, True), "call": (1, True), "html": (0, True), "index": (1, True),
              "slice": (1, True), "js": (0, True), "len": (1, False), "not": (1, False), "print": (0, True),
              "printf": (1, True), "println": (0, True), "urlquery": (0, True), "eq": (1, True),
              "ge": (2, False), "gt": (2, False), "le": (2, False), "lt": (2, False), "ne": (2, False)}
# Parameters of type string rather than interface{}: printf's format.
STRING_PARAMS = {"printf": 0}


def index_arg(index, cap: int) -> int:
    if index is None:
        raise FuncError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise FuncError(f"index out of range: {index}")
    return index


def index(item, *indexes):
    if item is None:
        raise FuncError("index of untyped nil")
    for idx in indexes:
        if isinstance(item, (list, str)):
            size = len(item.encode()) if isinstance(item, str) else len(item)
            x = index_arg(idx, size)
            if x == size:  # Go's indexArg lets len through; reflect then panics
                raise FuncError(f"reflect: {'string' if isinstance(item, str) else 'slice'} index out of range")
            item = item.encode()[x] if isinstance(item, str) else item[x]
        elif isinstance(item, dict):
            if not isinstance(idx, str):
                expected = "string"
                raise FuncError("value is nil; should be of type string" if idx is None else
                                f"value has type {type_name(idx)}; should be {expected}")
            item = item.get(idx, "" if isinstance(item, StringMap) else None)
        elif item is None:
            raise FuncError("index of nil pointer")
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def slice_(item, *indexes):
    if item is None:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        data: str | list = item.encode()
    elif isinstance(item, list):
        data = item
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    bounds = [0, len(data)]
    for i, idx in enumerate(indexes):
        x = index_arg(idx, len(data))
        bounds[i:i + 1] = [x]
    if bounds[0] > bounds[1]:
        raise FuncError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if len(bounds) > 2 and bounds[1] > bounds[2]:
        raise FuncError(f"invalid slice index: {bounds[1]} > {bounds[2]}")
    part = data[bounds[0]:bounds[1]]
    return part.decode(errors="replace") if isinstance(part, bytes) else part


def length(item) -> int:
    if item is None:
        raise FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, (list, dict)):
        return len(item)
    raise FuncError(f"len of type {type_name(item)}")


def call(fn, *args):
    if fn is None:
        raise FuncError("call of nil")
    raise FuncError(f"non-function {format_one(fn, 'v', None)} of type {type_name(fn)}")


# --- comparison -------------------------------------------------------------------------------------
_BASIC_KINDS = {"bool": "bool", "int": "int", "float64": "float", "string": "string"}


def basic_kind(value) -> str | None:
    """Go's comparison kind of a value, or None for what `eq`/`lt` cannot compare."""
    return _BASIC_KINDS.get(type_name(value)) if value is not None else None


def eq(arg1, *others) -> bool:
    if not others:
        raise FuncError("missing argument for comparison")
    k1 = basic_kind(arg1)
    for arg in others:
        k2 = basic_kind(arg)
        if k1 != k2:
            if arg1 is not None and arg is not None:
                raise FuncError(f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg)}")
            continue
        if k1 is not None:
            if arg1 == arg:
                return True
            continue
        if arg1 is None or arg is None:
            if (arg1 is None) == (arg is None):
                return True
            continue
        if type(arg1) is not type(arg) and not (isinstance(arg1, dict) and isinstance(arg, dict)):
            raise FuncError(f"non-comparable types {format_one(arg1, 's', None)}: {type_name(arg1)}, "
                            f"{type_name(arg)}: {format_one(arg, 'v', None)}")
        raise FuncError(f"non-comparable type {format_one(arg, 'v', None)}: {type_name(arg)}")
    return False


def ne(arg1, arg2) -> bool:
    return not eq(arg1, arg2)


def lt(arg1, arg2) -> bool:
    k1, k2 = basic_kind(arg1), basic_kind(arg2)
    if k1 is None or k2 is None:
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError(f"incompatible types for comparison: {type_name(arg1)} and {type_name(arg2)}")
    if k1 == "bool":
        raise FuncError("invalid type for comparison")
    if k1 == "string":
        return arg1.encode() < arg2.encode()
    return arg1 < arg2


def le(arg1, arg2) -> bool:
    return lt(arg1, arg2) or eq(arg1, arg2)


def gt(arg1, arg2) -> bool:
    return not le(arg1, arg2)


def ge(arg1, arg2) -> bool:
    return not lt(arg1, arg2)


# --- escaping -----------------------------------------------------------------------------------------
def eval_args(args: tuple) -> str:
    """The text of html/js/urlquery's arguments: a lone string as is, else fmt.Sprint with nil shown as
    "<no value>" (as the template prints it)."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is None else a for a in args])


HTML_ESCAPES = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
              "=": "\\u003D"}


def html(*args) -> str:
    return "".join(HTML_ESCAPES.get(ch, ch) for ch in eval_args(args))


def js_char(ch: str) -> str:
    if ch in JS_ESCAPES:
        return JS_ESCAPES[ch]
    if ch < " ":
        return f"\\u00{ord(ch):02X}"
    if ord(ch) >= 0x80 and not ch.isprintable():
        return f"\\u{ord(ch):04X}"
    return ch


def js(*args) -> str:
    return "".join(js_char(ch) for ch in eval_args(args))


def urlquery(*args) -> str:
    return urllib.parse.quote_plus(eval_args(args), safe="-_.~")


def printf(fmt: str, *args) -> str:
    try:
        return sprintf(fmt, list(args))
    except ValueError as exc:
        raise FuncError(str(exc)) from None


BUILTINS = {"call": call, "html": html, "index": index, "slice": slice_, "js": js, "len": length,
            "not": lambda arg: not is_true(arg), "print": lambda *a: sprint(list(a)), "printf": printf,
            "println": lambda *a: sprintln(list(a)), "urlquery": urlquery, "eq": eq, "ge": ge, "gt": gt,
            "le": le, "lt": lt, "ne": ne}
NAMES = set(SIGNATURES)
