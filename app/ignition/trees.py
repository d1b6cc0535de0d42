"""`storage.trees`: a local directory embedded as files and links, walked like Go's filepath.Walk
(lexical order, depth first). Entries the user already wrote for those paths keep their attributes
and get the contents (files without a source) or the target (links without one)."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable
from pathlib import Path

from app.ignition import messages as m
from app.ignition.contents import in_spec_order, with_contents
from app.yaml_source import Loc

Report = Callable[[str], None]


class TreeWalker:
    def __init__(self, storage: dict, origins: dict, loc: Loc, report: Report):
        self.storage, self.origins, self.loc, self.report = storage, origins, loc, report
        self.files = storage.setdefault("files", [])
        self.links = storage.setdefault("links", [])
        self.index = {kind: {e.get("path"): e for e in storage.get(kind, [])}
                      for kind in ("files", "directories", "links")}

    def walk(self, root: Path, dest: str) -> None:
        for name in sorted(os.listdir(root)):
            real = root / name
            target = posixpath.join(dest, name)
            info = real.lstat()
            if stat.S_ISDIR(info.st_mode):
                self.walk(real, target)
            elif stat.S_ISREG(info.st_mode):
                self._file(real, target, info)
            elif stat.S_ISLNK(info.st_mode):
                self._link(real, target)
            else:
                self.report(m.TREE_FILE_TYPE)

    def _exists(self, path: str) -> bool:
        return any(path in table for table in self.index.values())

    def _file(self, real: Path, target: str, info: os.stat_result) -> None:
        entry = self.index["files"].get(target)
        if entry is not None and (entry.get("contents") or {}).get("source"):
            return self.report(m.NODE_EXISTS)
        if entry is None:
            if self._exists(target):
                return self.report(m.NODE_EXISTS)
            entry = {"path": target}
            self.files.append(entry)
            self.index["files"][target] = entry
            self.origins[("storage", "files", len(self.files) - 1)] = self.loc
        compression = (entry.get("contents") or {}).get("compression")
        entry["contents"] = with_contents(entry.get("contents") or {}, real.read_bytes(), compression or None)
        entry.setdefault("mode", 0o755 if info.st_mode & 0o111 else 0o644)
        ordered = in_spec_order("File", entry)
        entry.clear()
        entry.update(ordered)  # in place: the entry is already in the files list

    def _link(self, real: Path, target: str) -> None:
        entry = self.index["links"].get(target)
        if entry is not None and entry.get("target"):
            return self.report(m.NODE_EXISTS)
        if entry is None:
            if self._exists(target):
                return self.report(m.NODE_EXISTS)
            entry = {"path": target}
            self.links.append(entry)
            self.index["links"][target] = entry
            self.origins[("storage", "links", len(self.links) - 1)] = self.loc
        entry["target"] = os.readlink(real)
        ordered = in_spec_order("Link", entry)
        entry.clear()
        entry.update(ordered)
