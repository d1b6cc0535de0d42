"""Helpers for the tests of generate's atomicity: small clusters, the tree as a reader sees it, and
what a clean output directory holds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from app.generations import CURRENT, GENERATIONS, MANAGED, MANIFEST, PREVIOUS
from tests.support.paths import EXAMPLE, REPO

Tree = dict[str, tuple[bytes, int] | int]  # file -> (bytes, mode); "dir/" -> mode


def small_cluster(path: Path, *, keep: tuple[str, ...]) -> Path:
    """cluster.yaml.example with only the nodes named in `keep`."""
    dropped = {"cp-1", "cp-2", "cp-3", "worker-1", "worker-2"} - set(keep)
    lines = [line for line in EXAMPLE.read_text().splitlines()
             if not any(f"name: {name}," in line for name in dropped)]
    path.write_text("\n".join(lines) + "\n")
    return path


def changed_templates(root: Path) -> Path:
    """A template override that changes every group file."""
    builtin = REPO / "app" / "templates" / "groups" / "node.json.tmpl"
    (root / "groups").mkdir(parents=True)
    (root / "groups" / "node.json.tmpl").write_text(
        builtin.read_text().replace('"metadata": {', '"metadata": {\n    "rack": "r1",'))
    return root


def fake_ipxe(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "undionly.kpxe").write_bytes(b"bios loader")
    (root / "ipxe.efi").write_bytes(b"uefi loader")
    (root / "snponly.efi").write_bytes(b"uefi snp loader")
    return root


def visible_tree(out: Path) -> Tree:
    """Every file and directory under the entries generate owns, through the paths readers use."""
    tree: Tree = {}
    for entry in MANAGED:
        top = out / entry
        if top.is_file():
            tree[entry] = (top.read_bytes(), top.stat().st_mode & 0o7777)
        elif top.is_dir():
            tree[f"{entry}/"] = top.stat().st_mode & 0o7777
            for path in sorted(top.rglob("*")):
                rel = f"{entry}/{path.relative_to(top)}"
                if path.is_dir():
                    tree[f"{rel}/"] = path.stat().st_mode & 0o7777
                else:
                    tree[rel] = (path.read_bytes(), path.stat().st_mode & 0o7777)
    return tree


def leftovers(out: Path, others: frozenset[str] = frozenset()) -> list[str]:
    """Anything in `out` beyond the links, the current generation and at most the previous one."""
    found = [p.name for p in out.iterdir() if p.name not in set(MANAGED) | {GENERATIONS} | others]
    found += [e for e in MANAGED if os.path.lexists(out / e) and not (out / e).is_symlink()]
    gens = out / GENERATIONS
    keep = {CURRENT} | {os.readlink(gens / CURRENT)}
    if (gens / PREVIOUS).is_symlink():
        keep |= {PREVIOUS, os.readlink(gens / PREVIOUS)}
    found += [f"{GENERATIONS}/{p.name}" for p in gens.iterdir() if p.name not in keep]
    for name in keep - {CURRENT, PREVIOUS}:
        generation = gens / name
        found += [str(p) for p in generation.rglob(".*") if p != generation / MANIFEST]
    return found


def copy_output(source: Path, target: Path) -> None:
    """A copy that keeps links as links (as `cp -a` does)."""
    if source.exists():
        shutil.copytree(source, target, symlinks=True)
