"""`generate` killed at every write point: the tree readers see is exactly the old one or exactly the
new one, and the next run removes what the killed one left and succeeds.

Fault injection is in-process: a forked child replaces every os function that changes the file system
(and the renameat2 wrapper) with one that SIGKILLs the process on its N-th call, then runs generate().
N goes from 1 to the number of such calls a clean run makes, so every state between two changes
is a state some child died in. A crash of the process, not of the machine: the page cache survives.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import app.generate
import app.generations
import app.linux_calls
from app import pki
from app.cli import app as cli
from app.cluster import load_cluster
from app.generate import generate
from app.render.tree import render_tree
from tests.support.generate_trees import (
    changed_templates,
    copy_output,
    fake_ipxe,
    leftovers,
    small_cluster,
    visible_tree,
)

# Every call that changes the file system; os.open only counts when it creates.
MUTATING = ("open", "write", "fsync", "link", "symlink", "rename", "replace", "mkdir", "chmod", "fchmod",
            "unlink", "rmdir")


class KillSwitch:
    """Counts mutating calls; on the `kill_at`-th one, SIGKILLs the process before making it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kill_at: int | None = None):
        self.calls, self.kill_at = 0, kill_at
        for name in MUTATING:
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))
        monkeypatch.setattr(app.linux_calls, "exchange", self._wrap("exchange", app.linux_calls.exchange))

    def _wrap(self, name: str, original):
        def counted(*args, **kwargs):
            creates = name != "open" or (args[1] if len(args) > 1 else kwargs.get("flags", 0)) & os.O_CREAT
            if creates:
                self.calls += 1
                if self.calls == self.kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return counted


class Scenario:
    """An old output directory (maybe none), the inputs of the run under test, and the tree it must give."""

    def __init__(self, root: Path, old: Path, config: Path, templates: Path, ipxe: Path,
                 monkeypatch: pytest.MonkeyPatch):
        self.root, self.old, self.config, self.templates, self.ipxe = root, old, config, templates, ipxe
        self.cluster, _ = load_cluster(config)
        self._remember_rendering(monkeypatch)
        self.old_tree = visible_tree(old) if old.exists() else {}
        self.work = root / "output"  # one path for every run: dnsmasq.conf holds it
        self.fresh_copy()
        self.run(self.work)
        self.new_tree = visible_tree(self.work)
        assert self.new_tree != self.old_tree

    def fresh_copy(self) -> Path:
        if os.path.lexists(self.work):
            shutil.rmtree(self.work)
        copy_output(self.old, self.work)
        return self.work

    def run(self, out: Path) -> None:
        generate(self.cluster, out, self.templates, assets=Path("/nonexistent"), ipxe_dir=self.ipxe)

    def _remember_rendering(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Rendering is pure and its inputs are the same on every run here (fixed secrets, one output
        path): render once, so the hundreds of runs spend their time writing, the part under test."""
        rendered: dict = {}

        def once(*args, **kwargs):
            if not rendered:
                rendered.update(render_tree(*args, **kwargs))
            return rendered
        monkeypatch.setattr(app.generate, "render_tree", once)

    def count_calls(self, monkeypatch: pytest.MonkeyPatch) -> int:
        out = self.fresh_copy()
        with monkeypatch.context() as patch:
            switch = KillSwitch(patch)
            self.run(out)
        assert visible_tree(out) == self.new_tree
        return switch.calls

    def crash_at(self, n: int, monkeypatch: pytest.MonkeyPatch) -> int:
        """Run in a child killed at the n-th mutating call; check the tree, recover, check again.
        Returns the signal that ended the child (0: it finished)."""
        out = self.fresh_copy()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            try:
                with monkeypatch.context() as patch:
                    KillSwitch(patch, kill_at=n)
                    self.run(out)
                os._exit(0)
            except BaseException:  # noqa: BLE001 - any failure is the child's exit status
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        died_of = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        assert died_of or os.WEXITSTATUS(status) == 0, f"crash point {n}: generate failed instead of dying"
        seen = visible_tree(out)
        assert seen in (self.old_tree, self.new_tree), f"crash point {n}: a mix of old and new: " \
            f"{sorted(k for k in set(seen) | set(self.new_tree) if seen.get(k) != self.new_tree.get(k))[:5]}"
        self.run(out)  # the next run, unhooked
        assert visible_tree(out) == self.new_tree, f"crash point {n}: the run after the crash"
        assert leftovers(out) == [], f"crash point {n}: leftovers after the next run"
        return died_of


@pytest.fixture
def scratch(tmp_path):
    """Where the sweeps write: tmpfs when there is one, where fsync costs nothing (each sweep makes
    thousands; on a busy disk they would take minutes). What is tested is the order of the calls."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="generate-crash-", dir=shm))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def fixed_secrets() -> pki.Secrets:
    return pki.create_secrets(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


@pytest.fixture
def inputs(tmp_path, monkeypatch, fixed_secrets):
    """Two nodes before, three after plus a template change; secrets made once, so trees compare."""
    monkeypatch.setattr(pki, "create_secrets", lambda now: fixed_secrets)
    before = small_cluster(tmp_path / "before.yaml", keep=("cp-1", "worker-1"))
    after = small_cluster(tmp_path / "after.yaml", keep=("cp-1", "worker-1", "worker-2"))
    return before, after, changed_templates(tmp_path / "templates"), fake_ipxe(tmp_path / "ipxe")


def old_output(tmp_path: Path, config: Path, ipxe: Path) -> Path:
    old = tmp_path / "old"
    cluster, _ = load_cluster(config)
    generate(cluster, old, None, assets=Path("/nonexistent"), ipxe_dir=ipxe)
    return old


def pre_generations_layout(generated: Path, target: Path) -> Path:
    """The layout generate wrote before generations: real directories and a manifest at the top."""
    target.mkdir()
    for entry in app.generations.MANAGED:
        source = generated / entry
        if source.is_dir():
            shutil.copytree(source, target / entry)  # follows the links: real files, modes kept
        elif source.is_file():
            shutil.copy2(source, target / entry)
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    (target / app.generations.MANIFEST).write_text("".join(f"{rel}\n" for rel in files))
    return target


def sweep(scenario: Scenario, monkeypatch) -> list[int]:
    total = scenario.count_calls(monkeypatch)
    print(f"{total} crash points")
    deaths = [scenario.crash_at(n, monkeypatch) for n in range(1, total + 2)]
    assert deaths[:-1] == [signal.SIGKILL] * total and deaths[-1] == 0  # every point hit; one past: none
    return deaths


def test_first_run_killed_at_every_write_point(scratch, monkeypatch, inputs):
    _, after, templates, ipxe = inputs
    deaths = sweep(Scenario(scratch, scratch / "none", after, templates, ipxe, monkeypatch), monkeypatch)
    assert len(deaths) > 50  # staging, fsyncs, links, the switch: far more than a handful


def test_update_killed_at_every_write_point(scratch, monkeypatch, inputs):
    before, after, templates, ipxe = inputs
    old = old_output(scratch, before, ipxe)
    sweep(Scenario(scratch, old, after, templates, ipxe, monkeypatch), monkeypatch)


def test_migration_from_the_old_layout_killed_at_every_write_point(scratch, monkeypatch, inputs):
    before, after, templates, ipxe = inputs
    old = pre_generations_layout(old_output(scratch, before, ipxe), scratch / "legacy")
    sweep(Scenario(scratch, old, after, templates, ipxe, monkeypatch), monkeypatch)


def test_migration_keeps_what_readers_see_and_files_generate_did_not_write(tmp_path, inputs):
    before, _, _, ipxe = inputs
    generated = old_output(tmp_path, before, ipxe)
    old = pre_generations_layout(generated, tmp_path / "legacy")
    shutil.rmtree(generated)
    old = old.rename(generated)  # where it was generated: dnsmasq.conf names that path
    (old / "matchbox" / "generic").mkdir()
    (old / "matchbox" / "generic" / "site.txt").write_bytes(b"the user's own file")
    (old / "events.jsonl").write_bytes(b"{}\n")
    tree = visible_tree(old)
    (old / "matchbox" / "ignition" / ".cp-1.ign.k2j4h1").write_bytes(b"half")  # the old code's temp file
    cluster, _ = load_cluster(before)
    result = generate(cluster, old, None, assets=Path("/nonexistent"), ipxe_dir=ipxe)
    assert visible_tree(old) == tree  # the same files, without the temporary one
    assert result.summary.written == [] and result.summary.removed == []
    assert all((old / entry).is_symlink() for entry in app.generations.MANAGED if entry not in app.generations.OPTIONAL)
    assert leftovers(old, frozenset({"events.jsonl"})) == []
    assert (old / "events.jsonl").read_bytes() == b"{}\n"


def test_generations_kept_are_the_current_and_the_previous(tmp_path, inputs):
    before, after, templates, ipxe = inputs
    out = tmp_path / "o"
    for config, override in [(before, None), (after, None), (after, templates), (before, templates)]:
        cluster, _ = load_cluster(config)
        generate(cluster, out, override, assets=Path("/nonexistent"), ipxe_dir=ipxe)
        assert leftovers(out) == []
    gens = out / app.generations.GENERATIONS
    assert sorted(p.name for p in gens.iterdir()) == ["3", "4", "current", "previous"]
    assert os.readlink(gens / "current") == "4" and os.readlink(gens / "previous") == "3"


def test_cli_names_the_file_and_prints_no_traceback_when_the_disk_is_full(tmp_path, monkeypatch, inputs):
    before, after, _, ipxe = inputs
    old = old_output(tmp_path, before, ipxe)
    tree = visible_tree(old)

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", no_space)
    result = CliRunner().invoke(cli, ["--config", str(after), "--output", str(old), "--templates", "/nonexistent",
                                      "generate", "--assets", "/nonexistent", "--ipxe-dir", str(ipxe)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert f"cannot write {old}/.generations/2/" in result.output
    assert "No space left on device; output left unchanged (free some space" in result.output
    assert visible_tree(old) == tree and leftovers(old) == []


class _LibcWithFailingSyncfs:
    """libc whose syncfs reports a write-back error (EIO), as the kernel does when a page failed."""

    def syncfs(self, fd: int) -> int:
        return -1


def test_a_write_back_error_at_the_one_flush_leaves_the_old_tree(tmp_path, monkeypatch, inputs):
    """The staged tree is flushed once for the file system (syncfs), not per file: its error must stop
    the switch exactly as a failed fsync did."""
    before, after, _, ipxe = inputs
    old = old_output(tmp_path, before, ipxe)
    tree = visible_tree(old)
    fsyncs = []
    monkeypatch.setattr(os, "fsync", lambda fd, original=os.fsync: fsyncs.append(fd) or original(fd))
    monkeypatch.setattr(app.linux_calls, "LIBC", _LibcWithFailingSyncfs())
    monkeypatch.setattr(app.linux_calls.ctypes, "get_errno", lambda: errno.EIO)
    cluster, _ = load_cluster(after)
    with pytest.raises(app.generations.OutputError, match="Input/output error; output left unchanged"):
        generate(cluster, old, None, assets=Path("/nonexistent"), ipxe_dir=ipxe)
    assert not fsyncs  # no file was fsynced one by one: the flush is the one that failed
    assert visible_tree(old) == tree and leftovers(old) == []


def test_without_syncfs_every_staged_file_is_fsynced(tmp_path, monkeypatch, inputs):
    before, _, _, ipxe = inputs
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd, original=os.fsync: synced.append(os.readlink(f"/proc/self/fd/{fd}"))
                        or original(fd))
    monkeypatch.setattr(app.linux_calls, "LIBC", object())
    old_output(tmp_path, before, ipxe)
    files = [p for p in synced if "/.generations/1/" in p and not os.path.isdir(p)]
    assert any(p.endswith("/credentials/ca.key") for p in files) and len(files) > 10
