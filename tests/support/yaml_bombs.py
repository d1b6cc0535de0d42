"""Hostile cluster.yaml texts (issue 14), shared by the unit and the subprocess tests.

Each entry: name -> (text, exit code, fragment of the message, (line, column) it must point at or
None). Before the loader had limits these ran for minutes and reached gigabytes (the alias bomb),
crashed LibYAML's composer with SIGSEGV (100,000 `[`), or ended in a traceback.
"""

from __future__ import annotations


def alias_bomb(levels: int = 9) -> str:
    """Billion laughs: each anchor is nine aliases of the previous one (9**9 strings, 342 bytes)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    names = "abcdefghijklmnopqrstuvwxyz"
    for n in range(1, levels):
        lines.append(f"{names[n]}: &{names[n]} [" + ",".join([f"*{names[n - 1]}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def block_nesting(levels: int) -> str:
    return "".join(" " * i + "a:\n" for i in range(levels)) + " " * levels + "a: 1\n"


# Deep flow nesting: our loader refuses it at level 65, unless the parser's own limit comes first
# (PyYAML 6.0.4 and later stop at 1,000 flow levels while scanning ahead); either message is clean and
# names line 1.
DEEP = "exceeds the limit of 64 levels|exceeded maximum nesting depth"


def names_the_problem(fragment: str, message: str) -> bool:
    """`fragment` is one message part, or several alternatives joined by '|'."""
    return any(part in message for part in fragment.split("|"))


def at(expected: tuple[int, int] | None, line: int | None, column: int | None, message: str) -> bool:
    """The expected place; where the parser's own nesting limit spoke first, the line it names."""
    if expected is None:
        return line is None
    parser_first = "exceeded maximum nesting depth" in message
    return line == expected[0] and (parser_first or column == expected[1])


BOMBS: dict[str, tuple[str, int, str, tuple[int, int] | None]] = {
    # the first alias that pushes the expanded size past the limit: the first *e, on line 6
    "alias bomb": (alias_bomb(), 2, "exceeds the limit of 100000 nodes", (6, 8)),
    "100,000 nested [": ("[" * 100_000 + "]" * 100_000 + "\n", 2, DEEP, (1, 65)),
    "100,000 [ unclosed": ("[" * 100_000, 2, DEEP, (1, 65)),
    "5,000 nested [": ("[" * 5_000 + "]" * 5_000 + "\n", 2, DEEP, (1, 65)),
    "3,000-level flow map": ("{a: " * 3_000 + "1" + "}" * 3_000 + "\n", 2, "exceeds the limit of 64 levels",
                             (1, 254)),
    "1,000-level block map": (block_nesting(1_000), 2, "exceeds the limit of 64 levels", (64, 64)),
    "100,000 compact - ": ("- " * 100_000 + "a\n", 2, "exceeds the limit of 64 levels", (1, 129)),
    "100,000-digit integer": ("cluster:\n  name: " + "1" * 100_000 + "\n", 2,
                              "exceeds the limit of 100 digits", (2, 9)),
    "1,000-digit hex integer": ("a: 0x" + "f" * 1_000 + "\n", 2, "exceeds the limit of 100 digits", (1, 4)),
    "300 KiB key": ("k" * (300 << 10) + ": 1\n", 2, "exceeds the limit of 262144 characters", (1, 1)),
    "2 MiB file": ("# " + "x" * (2 << 20) + "\n", 2, "exceeds the limit of 1048576 bytes", None),
    "alias loop": ("a: &a [1, *a]\n", 2, "alias *a is used inside the node it names", (1, 11)),
    "merge loop": ("a: &a {<<: *a}\n", 2, "alias *a is used inside the node it names", (1, 12)),
    "unreadable explicit tag": ("a: !!int abc\n", 2, "'abc' cannot be read as !!int", (1, 4)),
}
