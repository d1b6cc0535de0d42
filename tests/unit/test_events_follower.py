"""app/events/follower.py (the one way every reader reads on in events.jsonl) and the event kinds'
compatibility read of older logs."""

from __future__ import annotations

import os

from app.events import Event, EventKind, EventLog, Follower, NodeState, Phase, read_events

MAC = "52:54:00:00:00:01"


def line(kind: str, **more) -> bytes:
    return Event(kind, mac=MAC, source="http", **more).line().encode()


def test_whole_lines_only_and_each_once(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(Phase.IPXE) + line(EventKind.HTTP)[:-5])
    follower = Follower(path)
    assert [Event.from_json(raw.decode()).kind for _, raw in follower.lines()] == ["ipxe"]
    assert list(follower.lines()) == []  # the torn line waits
    with path.open("ab") as f:
        f.write(line(EventKind.HTTP)[-5:])
    [(at, raw)] = list(follower.lines())
    assert at == len(line(Phase.IPXE)) and Event.from_json(raw.decode()).kind == "http"


def test_a_compaction_is_read_from_its_start_and_said_to_be_one(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(Phase.IPXE) * 3)
    follower, told = Follower(path), []
    assert len(list(follower.lines(told.append))) == 3 and told == []  # the first file is not "new"
    fresh = tmp_path / "new"
    fresh.write_bytes(Event(EventKind.LOG_COMPACTED, source="serve").line().encode() + line(Phase.TFTP))
    os.replace(fresh, path)
    kinds = [Event.from_json(raw.decode()).kind for _, raw in follower.lines(told.append)]
    assert told == [True] and kinds == ["log-compacted", "tftp"]


def test_a_log_cut_by_hand_starts_over_but_is_not_a_compaction(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(Phase.IPXE) * 3)
    follower, told = Follower(path), []
    list(follower.lines(told.append))
    path.write_bytes(line(Phase.TFTP))  # same inode, shorter than what was read
    assert [Event.from_json(raw.decode()).kind for _, raw in follower.lines(told.append)] == ["tftp"]
    assert told == [False]


def test_skip_to_end_reads_only_what_comes_next(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(Phase.IPXE))
    follower = Follower(path)
    follower.skip_to_end()
    assert list(follower.lines()) == []
    with path.open("ab") as f:
        f.write(line(Phase.TFTP))
    assert len(list(follower.lines())) == 1


def test_old_logs_kernel_kind_reads_as_a_boot_asset_that_reaches_the_kernel_phase(tmp_path):
    old = b'{"detail":{"file":"/assets/k.vmlinuz"},"kind":"kernel","mac":"%s","source":"http"}\n' % MAC.encode()
    (tmp_path / "events.jsonl").write_bytes(line(Phase.IPXE) + old)
    assert [e.kind for e in read_events(tmp_path / "events.jsonl")] == ["ipxe", "boot-asset"]
    assert EventLog(tmp_path, {MAC: "n1"}).state(MAC).phase == Phase.KERNEL


def test_a_boot_asset_advances_a_node_to_the_kernel_phase_and_is_written_as_such():
    state = NodeState(MAC)
    state.apply(Event(Phase.IPXE, mac=MAC))
    state.apply(Event(EventKind.BOOT_ASSET, mac=MAC))
    assert state.phase == "kernel" and [p for _, p in state.history] == ["ipxe", "kernel"]
    assert b'"kind":"boot-asset"' in line(EventKind.BOOT_ASSET)
