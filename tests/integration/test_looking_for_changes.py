"""Serve looks for changes once a second without stalling requests: the group index asks the kernel
(an inotify watch) whether groups/ changed before looking at every file, and following other
processes' events skips serve's own lines without parsing them. These tests hold the freshness
promises that the cheap looks must keep."""

from __future__ import annotations

import json
import os

import pytest

from app.events import Event, EventLog, append_event
from app.events import follower as events_mod
from app.serve.boot.store import MatchboxStore
from app.serve.kernel import dirwatch
from app.serve.kernel.dirwatch import DirectoryWatch

MAC = "52:54:00:00:00:01"


def write_group(data, name: str, selector: dict) -> None:
    (data / "groups").mkdir(parents=True, exist_ok=True)
    (data / "groups" / f"{name}.json").write_text(json.dumps({"id": name, "profile": "p", "selector": selector}))


@pytest.fixture
def watched(tmp_path):
    d = tmp_path / "groups"
    d.mkdir()
    (d / "a.json").write_text("{}")
    watch = DirectoryWatch(d)
    if not watch.works:
        pytest.skip("no inotify on this kernel: the Store looks at every file instead")
    assert watch.changed()  # the first look always looks
    assert not watch.changed()
    yield d, watch
    watch.close()


@pytest.mark.parametrize("change", ["create", "write in place", "chmod", "rename in", "rename out", "delete"])
def test_every_kind_of_change_in_the_directory_is_seen_once(watched, tmp_path, change):
    d, watch = watched
    outside = tmp_path / "b.json"
    outside.write_text("{}")
    if change == "create":
        (d / "b.json").write_text("{}")
    elif change == "write in place":
        with (d / "a.json").open("r+") as f:
            f.write("[]")  # same size, same second: only the kernel's word shows it
    elif change == "chmod":
        os.chmod(d / "a.json", 0o600)
    elif change == "rename in":
        os.rename(outside, d / "b.json")
    elif change == "rename out":
        os.rename(d / "a.json", outside)
    else:
        (d / "a.json").unlink()
    assert watch.changed()
    assert not watch.changed()


def test_a_directory_swapped_behind_a_symlink_is_a_change(tmp_path):
    for generation in ("g1", "g2"):
        (tmp_path / generation).mkdir()
    link = tmp_path / "groups"
    link.symlink_to("g1")
    watch = DirectoryWatch(link)
    if not watch.works:
        pytest.skip("no inotify on this kernel")
    assert watch.changed() and not watch.changed()
    tmp = tmp_path / "groups.new"
    tmp.symlink_to("g2")
    os.replace(tmp, link)  # how generate switches generations
    assert watch.changed()
    assert not watch.changed()
    (tmp_path / "g2" / "x.json").write_text("{}")  # the new directory is the one watched now
    assert watch.changed()


def test_without_inotify_every_look_looks(tmp_path, monkeypatch):
    monkeypatch.setattr(dirwatch, "_LIBC", None)
    watch = DirectoryWatch(tmp_path)
    assert not watch.works
    assert watch.changed() and watch.changed()


def test_store_sees_an_in_place_edit_and_does_not_stat_every_group_when_nothing_changed(tmp_path, monkeypatch):
    data = tmp_path / "data"
    for i in range(50):
        write_group(data, f"n{i:02d}", {"mac": f"52:54:00:00:00:{i:02x}"})
    store = MatchboxStore(data, recheck=0.0)
    looks = []
    original = MatchboxStore._signature
    monkeypatch.setattr(MatchboxStore, "_signature", lambda self: looks.append(1) or original(self))
    assert store.select({"mac": "52:54:00:00:00:01"}).id == "n01"
    for _ in range(20):
        store.select({"mac": "52:54:00:00:00:01"})
    if DirectoryWatch(data).works:
        assert len(looks) == 1  # one look at the files; then the kernel says nothing changed
    path = data / "groups" / "n01.json"
    path.write_text(path.read_text().replace("00:00:00:01", "00:00:00:99"))
    assert store.select({"mac": "52:54:00:00:00:01"}) is None
    assert store.select({"mac": "52:54:00:00:00:99"}).id == "n01"


def test_store_keeps_looking_at_group_files_that_are_symlinks(tmp_path):
    """A write to a symlinked group's target is no event in groups/: such a directory is looked at."""
    data = tmp_path / "data"
    (data / "groups").mkdir(parents=True)
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"id": "g", "profile": "p", "selector": {"mac": MAC}}))
    (data / "groups" / "g.json").symlink_to(target)
    store = MatchboxStore(data, recheck=0.0)
    assert store.select({"mac": MAC}).id == "g"
    target.write_text(json.dumps({"id": "g", "profile": "p", "selector": {"mac": "52:54:00:00:00:02"}}))
    assert store.select({"mac": MAC}) is None


def test_within_the_recheck_period_nothing_is_asked(tmp_path):
    data = tmp_path / "data"
    write_group(data, "a", {"mac": MAC})
    store = MatchboxStore(data, recheck=3600)
    assert store.select({"mac": MAC}).id == "a"
    (data / "groups" / "a.json").unlink()
    assert store.select({"mac": MAC}).id == "a"  # the promise is "within recheck", and no sooner


class SteppedClock:
    """A monotonic clock that reads what the test says: a machine booted `start` seconds ago."""

    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("uptime", [0.0, 40 * 60.0, 3599.0, 10**6])
def test_the_first_look_is_made_however_recently_the_machine_booted(tmp_path, uptime):
    """The recheck period holds answers back after a look, never before the first one: a cache that
    began at "looked at 0.0" answered from an empty index on a machine up for less than the period."""
    data = tmp_path / "data"
    write_group(data, "a", {"mac": MAC})
    clock = SteppedClock(uptime)
    store = MatchboxStore(data, recheck=3600, clock=clock)
    assert store.select({"mac": MAC}).id == "a"
    (data / "groups" / "a.json").unlink()
    clock.now += 3599
    assert store.select({"mac": MAC}).id == "a"
    clock.now += 1
    assert store.select({"mac": MAC}) is None


@pytest.mark.parametrize("uptime", [0.0, 3599.0])
def test_an_image_layout_is_read_at_the_first_look_however_recently_the_machine_booted(tmp_path, uptime):
    from app.oci.layout import Layout

    clock = SteppedClock(uptime)
    layout = Layout(tmp_path, recheck=3600, clock=clock)
    layout.catalog()
    (tmp_path / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    before = layout.catalog()
    clock.now += 3600
    assert layout.catalog() is not before  # index.json appeared: re-read once the period passed


def test_follow_takes_external_events_among_many_own_lines_and_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(events_mod, "FOLLOW_BLOCK", 512)  # lines cross block boundaries
    serve_log = EventLog(tmp_path, {MAC: "n1"})
    serve_log.open()
    for i in range(200):
        serve_log.record(Event("http", mac=MAC, source="http", detail={"route": "/assets/", "i": i}))
    append_event(tmp_path, Event("reinstall", mac=MAC, source="cli"))
    for i in range(50):
        serve_log.record(Event("http", mac=MAC, source="http", detail={"i": i}))
    serve_log.record(Event("ipxe", mac=MAC, source="http"))
    assert serve_log.follow() == 1  # the reinstall, and none of serve's own lines again
    with (tmp_path / "events.jsonl").open("ab") as f:
        f.write(Event("reinstall", mac=MAC, source="cli").line().encode()[:-10])  # still being written
    assert serve_log.follow() == 0
    with (tmp_path / "events.jsonl").open("ab") as f:
        f.write(Event("reinstall", mac=MAC, source="cli").line().encode()[-10:])
    assert serve_log.follow() == 1
    serve_log.close()


def test_a_line_longer_than_a_block_is_skipped_not_waited_on(tmp_path, monkeypatch):
    monkeypatch.setattr(events_mod, "FOLLOW_BLOCK", 256)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"x" * 1000 + b"\n" + Event("reinstall", mac=MAC, source="cli").line().encode())
    follower = EventLog(tmp_path, {MAC: "n1"})
    assert follower.state(MAC) is not None  # the real line after the junk was read
