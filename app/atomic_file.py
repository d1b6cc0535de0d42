"""One file replaced atomically: a reader sees the whole old file or the whole new one, never a mix,
and a secret is never readable by others, even for a moment. (Whole trees: `app.generations`.)"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, mode: int, *, skip_if_same: bool = False) -> None:
    """One file, atomically: a temporary file in the same directory, fsynced, then renamed over."""
    if skip_if_same and same_file(path, data, mode):
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


def same_file(path: Path, data: bytes, mode: int) -> bool:
    """Whether `path` is a regular file (not a link) with exactly these bytes and this mode."""
    try:
        st = path.lstat()
        return (path.is_file() and not path.is_symlink() and (st.st_mode & 0o7777) == mode
                and st.st_size == len(data) and path.read_bytes() == data)
    except FileNotFoundError:
        return False
