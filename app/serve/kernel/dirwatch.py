"""Has anything in a directory changed since the last look? Asked once a second by the group index.

Looking for ourselves means a stat of every file, a stall of every request in flight that grows with
the number of groups (bench/streaming.py measures it). The kernel can tell us instead: an inotify
watch on the directory queues an event for every file created, written, renamed, deleted or chmod-ed
in it, synchronously with the change, so "nothing queued" means "nothing changed", and the look
costs one read(2).

What a watch cannot see, and how it is covered:
- the directory itself swapped (generate re-points `matchbox` at a new generation): the real path and
  inode of the directory are compared on every look, and a new one is watched afresh;
- the queue overflowed: the overflow is itself an event, so the answer is "changed";
- no inotify (another kernel, no instances left): `changed()` always says True and the caller looks
  for itself.
The caller keeps looking for itself where files are symlinks to elsewhere (their targets' writes are
not events in this directory).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x002, 0x004, 0x008
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x040, 0x080, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF = 0x400, 0x800
IN_NONBLOCK, IN_CLOEXEC = 0o4000, 0o2000000
WATCHED = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF)


def _libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.inotify_init1  # noqa: B018 - absent outside Linux: AttributeError
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class DirectoryWatch:
    """`changed()`: True if the directory (followed through symlinks) may have changed since the
    previous call; the first call is always True."""

    def __init__(self, path: os.PathLike | str):
        self.path = os.fspath(path)
        self._fd = -1
        self._watching: tuple[str, int, int] | None = None  # (real path, device, inode)
        if _LIBC is not None:
            fd = _LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            self._fd = fd if fd >= 0 else -1

    @property
    def works(self) -> bool:
        return self._fd >= 0

    def changed(self) -> bool:
        if self._fd < 0:
            return True
        identity = self._identity()
        if identity != self._watching:
            self._drain()
            self._watching = identity if identity is not None and self._watch(identity[0]) else None
            return True
        return self._drain()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()

    def _identity(self) -> tuple[str, int, int] | None:
        real = os.path.realpath(self.path)
        try:
            st = os.stat(real)
        except OSError:
            return None
        return real, st.st_dev, st.st_ino

    def _watch(self, real: str) -> bool:
        # One watch per instance: adding a watch for a new path replaces nothing, so the old one stays
        # until the directory goes (IN_IGNORED); its stray events only cause one extra look.
        return _LIBC.inotify_add_watch(self._fd, real.encode(), WATCHED) >= 0

    def _drain(self) -> bool:
        """Read every queued event; True if there was any."""
        seen = False
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return seen
            except OSError:
                return True
            if not data:
                return seen
            seen = True
