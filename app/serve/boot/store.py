"""A Matchbox data directory: group selection, profiles and configs, and the `Store` protocol the
boot policy and service read it through (tests give them an in-memory one).

Selection follows Matchbox exactly (docs/architecture.md, "Matchbox compatibility") but does not
re-read every group per request: groups are indexed by MAC and reloaded when the directory
changes. Keeping it fresh is cheap: at most once per `recheck` seconds, the kernel is asked whether
anything in groups/ changed (dirwatch.py), and only then is the directory looked at.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from app.recheck import Clock, Recheck
from app.serve.boot.labels import normalize_mac
from app.serve.kernel.dirwatch import DirectoryWatch

log = logging.getLogger("bootstrap_node.matchbox")


@dataclass(frozen=True)
class Group:
    id: str
    profile: str
    selector: dict[str, str]
    metadata: dict
    name: str = ""

    @property
    def sort_key(self) -> tuple[int, str]:
        return len(self.selector), ",".join(sorted(f"{k}={v}" for k, v in self.selector.items()))

    def matches(self, labels: dict[str, str]) -> bool:
        # A selector value "" matches a request that lacks the key (Go map lookup gives "").
        return all(labels.get(k, "") == v for k, v in self.selector.items())


def parse_group(data: object, source: str) -> Group | None:
    """A group as Matchbox reads it; None (and a log line) for what Matchbox would skip."""
    if not isinstance(data, dict):
        log.warning("skipping group %s: not a JSON object", source)
        return None
    selector = data.get("selector") or {}
    if not isinstance(selector, dict) or not all(isinstance(v, str) for v in selector.values()):
        log.warning("skipping group %s: selector values must be strings", source)
        return None
    selector = dict(selector)
    for key in list(selector):
        if key.lower() == "mac" and selector[key]:
            mac = normalize_mac(selector[key])
            if mac is None:
                log.warning("skipping group %s: invalid mac selector %r", source, selector[key])
                return None
            selector[key] = mac
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    return Group(str(data.get("id", "")), str(data.get("profile", "")), selector, metadata, str(data.get("name", "")))


@runtime_checkable
class Selector(Protocol):
    """What the boot policy reads: Matchbox's selection and profiles."""

    def select(self, labels: dict[str, str]) -> Group | None: ...

    def profile(self, profile_id: str) -> dict | None: ...


@runtime_checkable
class Store(Selector, Protocol):
    """What the boot service reads besides: the nodes the groups name, and the config files."""

    def known_nodes(self) -> dict[str, str]: ...

    def text(self, kind: str, name: str) -> tuple[str, bytes] | None: ...

    def served_ignition(self, name: str, render: Callable[[bytes], bytes]) -> bytes | None: ...


@dataclass
class _Index:
    signature: tuple
    ordered: list[Group] = field(default_factory=list)
    by_mac: dict[str, list[int]] = field(default_factory=dict)  # mac -> positions in `ordered`
    without_mac: list[int] = field(default_factory=list)
    known: dict[str, str] | None = None  # MAC -> node name, computed once per index
    has_links: bool = False  # a group file is a symlink: look at the files, not only at the directory


class MatchboxStore:
    """Reads one Matchbox data directory; safe to share between requests."""

    def __init__(self, root: Path, recheck: float = 1.0, clock: Clock = time.monotonic):
        self.root = root
        self.recheck = recheck
        self._clock = clock
        self._lock = threading.Lock()
        self._index = _Index(signature=("never",))
        self._watch = DirectoryWatch(root / "groups")
        self._groups_looked = Recheck(recheck, clock)
        self._cache: dict[tuple, _Cached] = {}  # (path, tag) -> what was parsed, of which version

    # -- groups ----------------------------------------------------------------------------------
    def select(self, labels: dict[str, str]) -> Group | None:
        index = self._fresh_index()
        candidates: list[int] = list(index.without_mac)
        for key, value in labels.items():
            if key.lower() == "mac":
                candidates += index.by_mac.get(value, [])
        for position in sorted(set(candidates)):
            group = index.ordered[position]
            if group.matches(labels):
                return group
        return None

    def groups(self) -> list[Group]:
        return list(self._fresh_index().ordered)

    def known_nodes(self) -> dict[str, str]:
        """MAC -> node name of every group that selects one machine, as the data dir is now: the
        event log asks this, so a node generated while serving is known at once."""
        index = self._fresh_index()
        if index.known is None:
            index.known = known_macs(index.ordered)
        return index.known

    def refresh(self) -> None:
        """Look at the disk on the next request instead of within `recheck` seconds: whoever just
        switched the tree (cluster mode's render) says so."""
        self._groups_looked.forget()
        for cached in list(self._cache.values()):
            cached.looked.forget()

    def _fresh_index(self) -> _Index:
        if not self._groups_looked.due():
            return self._index
        with self._lock:
            if self._groups_looked.due():
                if self._groups_may_have_changed():
                    signature = self._signature()
                    if signature != self._index.signature:
                        self._index = self._build(signature)
                self._groups_looked.done()
        return self._index

    def _groups_may_have_changed(self) -> bool:
        """Asked before every look: the kernel's answer (dirwatch.py), unless a group file is a
        symlink, whose target's writes the directory's watch does not see."""
        return self._watch.changed() or self._index.has_links

    def _signature(self) -> tuple:
        try:
            entries = sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size, e.is_symlink())
                             for e in os.scandir(self.root / "groups") if e.name.endswith(".json"))
        except FileNotFoundError:
            return ()
        return tuple(entries)

    def _build(self, signature: tuple) -> _Index:
        groups = []
        for name, *_ in signature:
            path = self.root / "groups" / name
            try:
                group = parse_group(json.loads(path.read_bytes()), name)
            except (OSError, ValueError) as exc:
                log.warning("skipping group %s: %s", name, exc)
                continue
            if group is not None:
                groups.append(group)
        groups.sort(key=lambda g: g.sort_key, reverse=True)
        index = _Index(signature, groups, has_links=any(link for *_, link in signature))
        for position, group in enumerate(groups):
            macs = [v for k, v in group.selector.items() if k.lower() == "mac" and v]
            if macs:
                index.by_mac.setdefault(macs[0], []).append(position)
            else:
                index.without_mac.append(position)
        log.info("indexed %d groups from %s", len(groups), self.root / "groups")
        return index

    # -- profiles and files ----------------------------------------------------------------------
    def profile(self, profile_id: str) -> dict | None:
        if not _safe_name(profile_id):
            return None
        data = self._load(self.root / "profiles" / f"{profile_id}.json", json.loads)
        if not isinstance(data, dict) or not data.get("id"):
            return None
        return data

    def text(self, kind: str, name: str) -> tuple[str, bytes] | None:
        """(file name, bytes) of ignition/<name> or generic/<name>, or None."""
        if not _safe_name(name):
            return None
        data = self._load(self.root / kind / name, lambda b: b)
        return (name, data) if isinstance(data, bytes) else None

    def served_ignition(self, name: str, render: Callable[[bytes], bytes]) -> bytes | None:
        """A raw .ign config as served (`render(bytes)`), computed once per version of the file."""
        if not _safe_name(name):
            return None
        return self._load(self.root / "ignition" / name, render, tag="served")

    def _load(self, path: Path, parse, tag: str = ""):
        """Parse a file once per version of it on disk (mtime and size), looking at the disk at most
        once per `recheck` seconds per file."""
        cached = self._cache.get((path, tag))
        if cached is None:
            cached = self._cache[(path, tag)] = _Cached(Recheck(self.recheck, self._clock))
        elif not cached.looked.due():
            return cached.value
        cached.looked.done()
        try:
            st = path.stat()
        except OSError:
            cached.version, cached.value = None, None
            return None
        version = (st.st_mtime_ns, st.st_size)
        if cached.version != version:
            try:
                cached.value = parse(path.read_bytes())
            except (OSError, ValueError):  # a config that cannot be rendered (render.RenderFailed) too
                cached.value = None
            cached.version = version
        return cached.value


@dataclass
class _Cached:
    looked: Recheck
    version: tuple | None = None
    value: object = None


def _safe_name(name: str) -> bool:
    """A plain file name: ids come from data files, but never let one walk out of the data dir."""
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..") and "\0" not in name


def known_macs(groups: list[Group]) -> dict[str, str]:
    """MAC -> node name for every group that selects one machine, in data-dir order."""
    known: dict[str, str] = {}
    for group in sorted(groups, key=lambda g: g.id):
        mac = next((v for k, v in group.selector.items() if k.lower() == "mac" and v), None)
        if mac:
            known.setdefault(mac, str(group.metadata.get("name") or group.id))
    return known
