"""Imports point one way (docs/architecture.md, "Layers"): a module imports only lower layers or its
own package, and nothing in app/ imports in a circle.

    0  leaves: layout (paths, ports), exitcodes, process, logs, yaml_source, recheck, confine,
       atomic_file
    1  bottom: generations, events/, pki, ignition/ (Butane), gotemplate/, oci/
    2  cluster/, credentials, cluster_record, status/
    3  render/, serve/, wait/, power/   (none of them imports another: serve never imports render,
                                         wait never imports serve)
    4  generate, init, pivot/
    5  cli/
    6  __main__

Inside serve/ the sub-packages are layered too:

    0  settings, errors
    1  kernel/, guard/, transfer/, cluster/
    2  boot/, registry/, supervise/
    3  app
    4  runner
    5  __main__

Function-level imports count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

LAYERS = {
    0: {"app", "app.layout", "app.exitcodes", "app.process", "app.logs", "app.yaml_source", "app.recheck",
        "app.confine", "app.atomic_file", "app.linux_calls"},
    1: {"app.generations", "app.events", "app.pki", "app.ignition", "app.gotemplate", "app.oci"},
    2: {"app.cluster", "app.credentials", "app.cluster_record", "app.status"},
    3: {"app.render", "app.serve", "app.wait", "app.power"},
    4: {"app.generate", "app.init", "app.pivot"},
    5: {"app.cli"},
    6: {"app.__main__"},
}
SERVE_LAYERS = {
    0: {"settings", "errors"},
    1: {"kernel", "guard", "transfer", "cluster"},
    2: {"boot", "registry", "supervise"},
    3: {"app"},
    4: {"runner"},
    5: {"__main__"},
}


def unit(module: str) -> str:
    """The layer unit a module belongs to: its package under app, or the module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layer(module: str) -> int:
    for rank, units in LAYERS.items():
        if unit(module) in units:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)")


def serve_layer(module: str) -> int:
    part = module.split(".")[2]
    for rank, parts in SERVE_LAYERS.items():
        if part in parts:
            return rank
    raise AssertionError(f"{module} is in no serve layer: add it to SERVE_LAYERS (and to docs/architecture.md)")


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_imports(path: Path) -> set[str]:
    """Every app module `path` imports: `from app.x import y` counts as app.x.y when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("app")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app") and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES or node.module == "app" else node.module)
    return found


MODULES = {module_name(p) for p in (REPO / "app").rglob("*.py")}


def test_imports_point_down():
    wrong = []
    for path in sorted((REPO / "app").rglob("*.py")):
        me = module_name(path)
        for target in app_imports(path):
            if target == "app.__version__" or unit(target) == unit(me):
                continue
            if layer(target) >= layer(me):
                wrong.append(f"{me} (layer {layer(me)}) imports {target} (layer {layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_inside_serve_imports_point_down():
    wrong = []
    for path in sorted((REPO / "app" / "serve").rglob("*.py")):
        me = module_name(path)
        if me == "app.serve":
            continue
        for target in app_imports(path):
            if not target.startswith("app.serve.") or target.split(".")[2] == me.split(".")[2]:
                continue
            if serve_layer(target) >= serve_layer(me):
                wrong.append(f"{me} (serve layer {serve_layer(me)}) imports {target} ({serve_layer(target)})")
    assert not wrong, "\n".join(wrong)


def test_every_unit_named_in_the_layers_exists():
    units = {unit(m) for m in MODULES}
    missing = sorted(u for names in LAYERS.values() for u in names if u not in units)
    assert not missing, f"LAYERS names modules that do not exist: {missing}"
    parts = {m.split(".")[2] for m in MODULES if m.startswith("app.serve.")}
    missing = sorted(p for names in SERVE_LAYERS.values() for p in names if p not in parts)
    assert not missing, f"SERVE_LAYERS names modules that do not exist: {missing}"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted((REPO / "app").rglob("*.py")):
        me = module_name(path)
        # A package's __init__ re-exports its modules; importing the package from one of them is
        # importing those modules, so edges to a package go to the module named, where known.
        graph[me] = {t for t in app_imports(path) if t in MODULES and t != me and not me.startswith(t + ".")}
    return graph


def test_no_module_in_app_imports_in_a_circle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
