"""Imports point one way (ARCHITECTURE.md): a module imports only lower layers or its own package.

    0  leaves: layout (paths, ports), exitcodes, process, logs, yaml_source, recheck, confine
    1  bottom: atomic, events, pki, ignition/ (Butane), gotemplate/, oci/
    2  cluster/, credentials, joins, status/
    3  render/, serve/, wait/, power/   (none of them imports another: serve never imports render,
                                         wait never imports serve)
    4  generate, init
    5  cli/
    6  __main__
Function-level imports count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import REPO

LAYERS = {
    0: {"app", "app.layout", "app.exitcodes", "app.process", "app.logs", "app.yaml_source", "app.recheck",
        "app.confine"},
    1: {"app.atomic", "app.events", "app.pki", "app.ignition", "app.gotemplate", "app.oci"},
    2: {"app.cluster", "app.credentials", "app.joins", "app.status"},
    3: {"app.render", "app.serve", "app.wait", "app.power"},
    4: {"app.generate", "app.init"},
    5: {"app.cli"},
    6: {"app.__main__"},
}


def unit(module: str) -> str:
    """The layer unit a module belongs to: its package under app, or the module itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def layer(module: str) -> int:
    for rank, units in LAYERS.items():
        if unit(module) in units:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to ARCHITECTURE.md)")


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def app_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("app")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app") and node.level == 0:
            found |= {f"{node.module}.{a.name}" if node.module == "app" else node.module for a in node.names}
    return found


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
