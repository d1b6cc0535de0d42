"""What anyone can check about app/ (docs/architecture.md, "Conventions"): modules stay small, event
kinds are named (Phase, EventKind), and the code stands on its own (no file outside the repository
is cited)."""

from __future__ import annotations

import ast

from tests.support.paths import REPO

MAX_LINES = 400
# Modules allowed past MAX_LINES, and why.
LONGER = {
    "app/gotemplate/parser.py": "Go's text/template grammar in one recursive-descent parser; splitting it "
                                "would separate mutually recursive productions",
}


def app_files():
    return sorted((REPO / "app").rglob("*.py"))


def test_no_module_is_over_the_limit_without_a_stated_reason():
    long = {str(p.relative_to(REPO)): len(p.read_text().splitlines()) for p in app_files()}
    over = {path: n for path, n in long.items() if n > MAX_LINES and path not in LONGER}
    assert not over, f"modules over {MAX_LINES} lines: {over} (split them, or say why in LONGER)"
    assert all(long.get(path, 0) > MAX_LINES for path in LONGER), "LONGER names a module that is short now"


def spelled(node: ast.expr) -> bool:
    """A string literal, or a conditional one of whose branches is."""
    if isinstance(node, ast.IfExp):
        return spelled(node.body) or spelled(node.orelse)
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def literal_event_kinds(tree: ast.AST) -> list[int]:
    """Lines that build an Event from a string literal or compare a `.kind` with one."""
    lines = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Event"
                and node.args and spelled(node.args[0])):
            lines.append(node.lineno)
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "kind":
            if any(isinstance(c, ast.Constant) and isinstance(c.value, str) for c in node.comparators):
                lines.append(node.lineno)
    return lines


def test_event_kinds_are_named_never_spelled():
    found = {str(p.relative_to(REPO)): literal_event_kinds(ast.parse(p.read_text())) for p in app_files()}
    assert not {path: lines for path, lines in found.items() if lines}


def test_the_literal_finder_finds_both_spellings():
    assert literal_event_kinds(ast.parse('Event("kernel", mac=m)\nif e.kind == "http": pass\n')) == [1, 2]
    assert literal_event_kinds(ast.parse('Event(EventKind.HTTP if x else "dnsmasq")\n')) == [1]
    assert literal_event_kinds(ast.parse('Event(EventKind.HTTP)\nif e.kind == Phase.IPXE: pass\n')) == []


def test_app_cites_no_file_outside_the_repository():
    cited = [str(p.relative_to(REPO)) for p in app_files()
             if any(word in p.read_text() for word in ("../shared", "ARCHITECTURE.md", "threat-model.md"))]
    assert cited == []
