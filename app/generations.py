"""Writing the output directory: a crash, a full disk or a reader at any moment sees either the whole
previous tree or the whole new one, never a mix.

    <out>/.generations/<n>/            one complete tree (credentials/ matchbox/ tftp/ dnsmasq.conf) + MANIFEST
    <out>/.generations/current -> <n>  the tree in use, switched by a single rename()
    <out>/.generations/previous -> <m> the tree before it, kept one more run for readers in flight
    <out>/matchbox -> .generations/current/matchbox   (credentials, tftp, dnsmasq.conf alike): stable links

A new tree is staged in a fresh <n> (files that did not change are hard links to the current tree's),
its files are flushed to disk (one syncfs of the file system; an fsync per file where there is no
syncfs) and every directory is fsynced, then `current` is switched. Anything else under .generations/
is what a crashed run left behind, removed by the next run. `app.atomic_file.atomic_write` is the
single-file version, for the files other commands own (serve.json, kubeconfig).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from app import linux_calls
from app.atomic_file import same_file

MANAGED = ("chrony.conf", "credentials", "dnsmasq.conf", "matchbox", "tftp")  # top-level entries generate owns
OPTIONAL = frozenset({"chrony.conf"})  # linked only while the tree holds it: never a dangling link
GENERATIONS = ".generations"
CURRENT, PREVIOUS = "current", "previous"
MANIFEST = ".generated"  # in each generation: the files generate wrote there (the rest are the user's)
PRIVATE_DIRS = ("credentials", "credentials/etcd", "matchbox/ignition")  # 0700: they hold keys
DIR_MODE, PRIVATE_MODE = 0o755, 0o700  # dnsmasq runs as nobody: it must traverse down to tftp/
# A new output directory: nobody else may list it or write in it, whatever the umask; dnsmasq (user
# nobody) may still pass through it to tftp/, which 0700 would forbid.
OUTPUT_MODE = 0o711
SWAPPED = ".{}.swapped"  # a pre-generations entry, moved aside while its link takes its place
NEW_LINK = "{}.new"  # a link about to replace CURRENT or PREVIOUS
NO_LINKS = {errno.EPERM, errno.EMLINK, errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS}  # copy instead
NO_EXCHANGE = {errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP}
HINTS = {errno.ENOSPC: "free some space and run generate again",
         errno.EDQUOT: "raise the quota or free some space, and run generate again",
         errno.EROFS: "the output directory is on a read-only file system"}

Files = dict[str, tuple[bytes, int]]


class OutputError(Exception):
    pass


@dataclass
class WriteSummary:
    written: list[str]  # new or changed, relative to the tree that was visible before
    unchanged: list[str]
    removed: list[str]
    warnings: list[str] = field(default_factory=list)


def write_tree(output: Path, files: Files) -> WriteSummary:
    """Make `files` the visible tree under `output`, all at once; no new generation when nothing changed."""
    unknown = sorted({rel.split("/")[0] for rel in files} - set(MANAGED))
    if unknown:
        raise ValueError(f"generate does not own {unknown}")
    gens = output / GENERATIONS
    if not output.exists():
        with _writing(output):
            output.parent.mkdir(parents=True, exist_ok=True)
            _make_dir(output, OUTPUT_MODE)
    with _writing(gens):
        gens.mkdir(parents=True, exist_ok=True)
        if gens.stat().st_mode & 0o777 != DIR_MODE:
            os.chmod(gens, DIR_MODE)
    with _exclusive(output):
        warnings = _remove_leftovers(output)
        if _pre_generation_entries(output):
            _migrate(output)
        current = _generation(gens, CURRENT)
        plan = _plan(current, files)
        if current is None or plan.written or plan.removed:
            links = {rel: current / rel for rel in plan.unchanged + plan.foreign} if current else {}
            new = _stage(gens, links, {rel: files[rel] for rel in plan.written}, sorted(files))
            _ensure_links(output, files)
            warnings += _switch(gens, new, current)
        else:
            _ensure_links(output, files)
        warnings += _remove_unreferenced(gens)
    return WriteSummary(plan.written, plan.unchanged, plan.removed, warnings)


# -- what changes -----------------------------------------------------------------------------------
@dataclass
class _Plan:
    written: list[str]
    unchanged: list[str]
    removed: list[str]
    foreign: list[str]  # files someone else put into the tree: carried over untouched


def _plan(current: Path | None, files: Files) -> _Plan:
    if current is None:
        return _Plan(sorted(files), [], [], [])
    present = set(_files_under(current))
    generated = _read_manifest(current)
    generated = present if generated is None else generated & present
    unchanged = sorted(rel for rel, (data, mode) in files.items() if same_file(current / rel, data, mode))
    return _Plan(sorted(set(files) - set(unchanged)), unchanged, sorted(generated - set(files)),
                 sorted(present - generated - set(files)))


def _files_under(root: Path) -> Iterator[str]:
    """Relative paths of the regular files in the managed entries under `root` (a generation, or the
    output directory itself), skipping the hidden names only temporary files use."""
    for entry in MANAGED:
        top = root / entry
        if top.is_file():
            yield entry
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            base = Path(dirpath).relative_to(root)
            for name in filenames:
                if not name.startswith(".") and (Path(dirpath) / name).is_file():
                    yield str(base / name)


def _read_manifest(where: Path) -> set[str] | None:
    try:
        return set((where / MANIFEST).read_text().split())
    except FileNotFoundError:
        return None


# -- staging and switching ------------------------------------------------------------------------
def _stage(gens: Path, links: dict[str, Path], writes: Files, manifest: list[str]) -> Path:
    """A complete, fsynced generation: `links` hard-linked (or copied), `writes` written."""
    numbers = [int(p.name) for p in gens.iterdir() if p.name.isdigit()]
    new = gens / str(max(numbers, default=0) + 1)
    try:
        _make_dir(new, DIR_MODE)
        made: set[str] = set()
        batch = linux_calls.syncfs_available()  # one flush for the tree, not a journal commit per file
        for rel in sorted(set(links) | set(writes)):
            _make_parents(new, rel, made)
            if rel in writes:
                _write_new(new / rel, *writes[rel], sync=not batch)
            else:
                _link_or_copy(links[rel], new / rel, sync=not batch)
        _write_new(new / MANIFEST, "".join(f"{rel}\n" for rel in manifest).encode(), 0o644, sync=not batch)
        if batch:
            with _writing(new):
                linux_calls.syncfs(new)
        for dirpath, _, _ in os.walk(new, topdown=False):  # the entries must be durable before the switch
            _synced_dir(Path(dirpath))
        _synced_dir(gens)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    return new


def _make_parents(root: Path, rel: str, made: set[str]) -> None:
    parts = rel.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        if sub not in made:
            _make_dir(root / sub, PRIVATE_MODE if sub in PRIVATE_DIRS else DIR_MODE)
            made.add(sub)


def _make_dir(path: Path, mode: int) -> None:
    with _writing(path):
        os.mkdir(path, mode)
        os.chmod(path, mode)  # mkdir's mode went through the umask


def _write_new(path: Path, data: bytes, mode: int, sync: bool = True) -> None:
    with _writing(path):
        # Created with the final mode, so a secret is never readable by others, even for a moment.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits off
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)


def _link_or_copy(source: Path, path: Path, sync: bool = True) -> None:
    with _writing(path):
        try:
            os.link(source, path)
            return
        except OSError as exc:
            if exc.errno not in NO_LINKS:
                raise
    with _writing(source):
        data, mode = source.read_bytes(), source.stat().st_mode & 0o7777
    _write_new(path, data, mode, sync)


def _switch(gens: Path, new: Path, old: Path | None) -> list[str]:
    """Point CURRENT at `new` (the one moment readers move over); the rest is bookkeeping."""
    try:
        if old is not None:
            _replace_link(gens, PREVIOUS, old.name)
        _replace_link(gens, CURRENT, new.name)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    try:
        _fsync_dir(gens)
    except OSError as exc:
        return [(f"the new tree is in place, but syncing {gens} failed ({exc.strerror}): a power loss now "
                 "may bring the previous tree back")]
    return []


def _replace_link(directory: Path, name: str, target: str) -> None:
    temporary = directory / NEW_LINK.format(name)
    with _writing(temporary):
        try:
            os.symlink(target, temporary)
            os.replace(temporary, directory / name)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _generation(gens: Path, name: str) -> Path | None:
    link = gens / name
    if not link.is_symlink():
        return None
    target = gens / os.readlink(link)
    return target if target.is_dir() and target.parent == gens else None


def _ensure_links(output: Path, files: Files) -> None:
    """The stable top-level links; made once (before the first switch, so the whole tree appears at once).
    An optional entry's link exists while the tree has that entry."""
    made = False
    present = {rel.split("/")[0] for rel in files}
    for entry in MANAGED:
        if entry in OPTIONAL and entry not in present:
            if (output / entry).is_symlink():
                with _writing(output / entry):
                    (output / entry).unlink()
                made = True
            continue
        if not os.path.lexists(output / entry):
            with _writing(output / entry):
                os.symlink(f"{GENERATIONS}/{CURRENT}/{entry}", output / entry)
            made = True
    if made:
        _synced_dir(output)


# -- an output directory from before generations: real files where the links go -------------------
def _pre_generation_entries(output: Path) -> list[str]:
    return [e for e in MANAGED if os.path.lexists(output / e) and not (output / e).is_symlink()]


def _migrate(output: Path) -> None:
    """Take over an old-layout tree without changing what readers see: first a generation holding
    exactly the visible files (hard links), then each real entry swapped for its link in one step."""
    gens = output / GENERATIONS
    current = _generation(gens, CURRENT)
    visible = sorted(_files_under(output))
    generated = _read_manifest(output)  # the old layout kept its manifest at the top
    if current is not None and generated is not None:
        generated |= _read_manifest(current) or set()
    manifest = visible if generated is None else [rel for rel in visible if rel in generated]
    # Link the files themselves, not the top-level links some entries may already be.
    new = _stage(gens, {rel: Path(os.path.realpath(output / rel)) for rel in visible}, {}, manifest)
    _switch(gens, new, current)
    for entry in _pre_generation_entries(output):
        _swap_for_link(output, entry)
    with _writing(output / MANIFEST):
        (output / MANIFEST).unlink(missing_ok=True)
    _synced_dir(output)


def _swap_for_link(output: Path, entry: str) -> None:
    path, aside = output / entry, output / SWAPPED.format(entry)
    with _writing(path):
        os.symlink(f"{GENERATIONS}/{CURRENT}/{entry}", aside)
        if not path.is_dir():
            os.replace(aside, path)  # a file: rename() replaces it atomically
            return
        try:
            linux_calls.exchange(aside, path)  # a directory cannot be renamed over: swap the two names instead
        except OSError as exc:
            if exc.errno not in NO_EXCHANGE:
                raise
            # No renameat2 here: a moment without the entry, never a mix of trees.
            os.unlink(aside)
            os.rename(path, aside)
            os.symlink(f"{GENERATIONS}/{CURRENT}/{entry}", path)
        _remove(aside)


# -- housekeeping ---------------------------------------------------------------------------------
def _remove_leftovers(output: Path) -> list[str]:
    """What a crashed run left: entries swapped aside, the old manifest once migrated, and whatever in
    .generations/ no link points at (half-staged trees, temporary links)."""
    problems = []
    for entry in MANAGED:
        problems += _remove(output / SWAPPED.format(entry))
    if not _pre_generation_entries(output):
        problems += _remove(output / MANIFEST)
    return problems + _remove_unreferenced(output / GENERATIONS)


def _remove_unreferenced(gens: Path) -> list[str]:
    keep = {CURRENT, PREVIOUS} | {g.name for g in (_generation(gens, CURRENT), _generation(gens, PREVIOUS)) if g}
    through_links = any((gens.parent / e).is_symlink() for e in MANAGED)
    problems = []
    for path in gens.iterdir():
        # A real directory named current/previous is a copy made without keeping links (cp -r): once
        # nothing visible goes through it, it is only in the way of the link.
        stale_copy = path.name in (CURRENT, PREVIOUS) and not path.is_symlink() and not through_links
        if path.name not in keep or stale_copy:
            problems += _remove(path)
    return problems


def _remove(path: Path) -> list[str]:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
    except OSError as exc:
        return [f"cannot remove {path}: {exc.strerror}"]
    return []


@contextmanager
def _exclusive(output: Path) -> Iterator[None]:
    """One generate per output directory at a time (the lock goes away with the process)."""
    fd = os.open(output / GENERATIONS, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"another generate is writing {output}; output left unchanged") from None
        yield
    finally:
        os.close(fd)


def _synced_dir(path: Path) -> None:
    with _writing(path):
        _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    """A directory's fsync makes the names created, renamed or removed in it durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _writing(path: Path) -> Iterator[None]:
    """An OSError while writing `path` becomes an OutputError naming it (every caller runs before the
    switch, or says otherwise, so the visible tree is still the old one)."""
    try:
        yield
    except OSError as exc:
        hint = HINTS.get(exc.errno or 0)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; output left unchanged"
                          + (f" ({hint})" if hint else "")) from None
