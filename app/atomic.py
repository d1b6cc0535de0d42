"""Writing the output directory: atomic writes with their modes, and removal of files an earlier
`generate` wrote that the current one no longer produces."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


MANIFEST = ".generated"  # the files the last generate wrote, one per line
PRIVATE_DIRS = ("credentials", "credentials/etcd", "matchbox/ignition")  # 0700: they hold keys


class OutputError(Exception):
    pass


@dataclass
class WriteSummary:
    written: list[str]
    unchanged: list[str]
    removed: list[str]


def write_tree(output: Path, files: dict[str, tuple[bytes, int]]) -> WriteSummary:
    """Write every file atomically (temporary file + rename); leave identical files untouched."""
    output.mkdir(parents=True, exist_ok=True)
    for d in PRIVATE_DIRS:
        (output / d).mkdir(parents=True, exist_ok=True)
        os.chmod(output / d, 0o700)
    summary = WriteSummary([], [], [])
    for rel, (data, mode) in sorted(files.items()):
        path = output / rel
        if _same(path, data, mode):
            summary.unchanged.append(rel)
            continue
        atomic_write(path, data, mode)
        summary.written.append(rel)
    summary.removed = _remove_stale(output, set(files))
    atomic_write(output / MANIFEST, "".join(f"{rel}\n" for rel in sorted(files)).encode(), 0o644,
                 skip_if_same=True)
    return summary


def atomic_write(path: Path, data: bytes, mode: int, *, skip_if_same: bool = False) -> None:
    if skip_if_same and _same(path, data, mode):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)  # before any byte lands: a secret is never readable by others
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _same(path: Path, data: bytes, mode: int) -> bool:
    try:
        st = path.stat()
        return (st.st_mode & 0o7777) == mode and st.st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False


def _remove_stale(output: Path, current: set[str]) -> list[str]:
    try:
        previous = (output / MANIFEST).read_text().split()
    except FileNotFoundError:
        return []
    removed = []
    for rel in previous:
        if rel not in current and not rel.startswith("credentials/"):
            (output / rel).unlink(missing_ok=True)
            removed.append(rel)
    return removed
