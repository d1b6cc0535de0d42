"""The two Linux calls the output tree needs that Python's os module lacks: syncfs (flush one file
system) and renameat2 with RENAME_EXCHANGE (swap two names at once). Each raises OSError as os does;
where `syncfs_available()` is false, callers fall back to an fsync per file."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

RENAME_EXCHANGE, AT_FDCWD = 2, -100  # <linux/fs.h>, <fcntl.h>
LIBC = ctypes.CDLL(None, use_errno=True)


def syncfs_available() -> bool:
    return hasattr(LIBC, "syncfs")


def syncfs(where: Path) -> None:
    """Every write on `where`'s file system reaches the disk (a write-back error raises, Linux 5.8+)."""
    fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _ok(LIBC.syncfs(fd), where)
    finally:
        os.close(fd)


def exchange(a: Path, b: Path) -> None:
    """Swap the names `a` and `b` in one step (both must exist)."""
    renameat2 = getattr(LIBC, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(b))
    _ok(renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE), b)


def _ok(result: int, path: Path) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(path))
