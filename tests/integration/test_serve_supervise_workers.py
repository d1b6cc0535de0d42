"""`serve --workers N`: several processes on one port keep the install-window promises of one.

First the shared event log itself, two instances on one output directory standing for two workers
(in-process, so that each step's order is certain); then the real thing, a leader and two workers as
processes, with concurrent requests spread over them by the kernel."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from app.events import Event, append_event
from app.events.log import SharedEventLog
from tests.support.assets import serve_options
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import cli, free_port, wait_for
from tests.support.serve import bearer, credential_in

MAC = "52:54:00:00:00:11"  # cp-1 in cluster.yaml.example
KNOWN = {MAC: "cp-1"}


def worker_logs(tmp_path: Path, **kw) -> tuple[SharedEventLog, SharedEventLog]:
    a, b = SharedEventLog(tmp_path, KNOWN, **kw), SharedEventLog(tmp_path, KNOWN, **kw)
    a.open()
    b.open()
    return a, b


def open_window(log: SharedEventLog) -> None:
    log.record(Event("ipxe", mac=MAC, source="http", detail={"ip": "10.0.0.11", "window": "open"}))


def test_a_decision_in_one_worker_sees_what_another_recorded(tmp_path):
    a, b = worker_logs(tmp_path)
    open_window(a)
    with b.transaction():
        window = b.state(MAC).window
        assert window is not None and not window.install_served
        b.record(Event("install-ignition", mac=MAC, source="http", detail={"credential": "d1"}))
    with a.transaction():
        assert a.state(MAC).window.install_served  # so a second request in `a` is refused
        assert a.state(MAC).window.install_credential == "d1"
    assert a.mac_at("10.0.0.11") == b.mac_at("10.0.0.11") == MAC  # downloads are the node's in both


def test_own_lines_are_applied_once_even_with_another_writers_line_between(tmp_path):
    a, b = worker_logs(tmp_path)
    with a.transaction():
        a.record(Event("alert", mac=MAC, source="http", detail={"reason": "r"}))
        with open(tmp_path / "events.jsonl", "ab") as f:  # a writer that does not take the lock
            f.write(Event("reinstall", mac=MAC, source="cli").line().encode())
        a.record(Event("alert", mac=MAC, source="http", detail={"reason": "r"}))
        a.record(Event("alert", mac=MAC, source="http", detail={"reason": "r"}))
    a.follow()
    b.follow()
    assert a.alerts["r"] == b.alerts["r"] == 3
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert sum('"kind":"reinstall"' in line for line in lines) == 1


def test_a_compaction_by_one_worker_is_followed_by_the_other(tmp_path):
    a, b = worker_logs(tmp_path, max_bytes=4096)
    open_window(a)
    b.record(Event("install-ignition", mac=MAC, source="http", detail={"credential": "d1"}))
    for i in range(60):  # past the cap: one of them compacts
        (a if i % 2 else b).record(Event("http", mac=MAC, source="http", detail={"route": "/assets/", "i": i}))
    assert (tmp_path / "events.jsonl.1").exists()
    b.record(Event("installed", mac=MAC, source="node"))
    a.follow()
    for log in (a, b):
        state = log.state(MAC)
        assert state.installed and state.window is None, log
    fresh = (tmp_path / "events.jsonl").read_text()
    assert '"kind":"installed"' in fresh  # written to the new file, not into the rotated one


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("workers")
    out = root / "output"
    result = cli("--config", str(EXAMPLE), "--output", str(out), "--templates", "/nonexistent", "generate",
                 "--ipxe-dir", str(root / "none"), "--assets", str(root / "assets"))
    assert result.returncode == 0, result.stderr
    return out


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def start(out: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    shutil.rmtree(out / "run" / "workers", ignore_errors=True)  # an earlier test's, counted below otherwise
    proc = subprocess.Popen([sys.executable, "-m", "app", "--output", str(out), "serve", "--listen",
                             f"127.0.0.1:{port}", "--dhcp", "none", "--tftp", "none", "--bind", "address",
                             "--workers", str(workers), *serve_options(out.parent / "assets")],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    published = out / "run" / "workers"
    # Every worker publishes its counters once a second from when it serves.
    wait_for(lambda: proc.poll() is not None or len(list(published.glob("*.json"))) == workers,
             what=f"{workers} workers serving")
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc, f"http://127.0.0.1:{port}"


async def fetch_many(url: str, path: str, count: int, headers=None) -> list[tuple[int, bytes]]:
    async def one():  # a new connection each, as booting machines make them: the kernel spreads them
        async with aiohttp.ClientSession(url) as http, http.get(path, headers=headers) as r:
            return r.status, await r.read()
    return await asyncio.gather(*[one() for _ in range(count)])


def metric(url: str, name: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics") as r:
        text = r.read().decode()
    return sum(int(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_three_workers_serve_each_config_once_and_count_as_one(generated):
    (generated / "events.jsonl").unlink(missing_ok=True)
    proc, url = start(generated, 3)
    try:
        assert len(children_of(proc.pid)) == 2
        (status, _), = asyncio.run(fetch_many(url, f"/ipxe?mac={MAC}", 1))
        assert status == 200
        answers = asyncio.run(fetch_many(url, f"/ignition?mac={MAC}", 30))
        served = [body for status, body in answers if status == 200]
        assert len(served) == 1 and sorted(s for s, _ in answers).count(403) == 29
        credential = credential_in(served[0])
        finals = asyncio.run(fetch_many(url, f"/ignition?mac={MAC}&os=installed", 10, bearer(credential)))
        assert sorted(s for s, _ in finals) == [200] + [403] * 9
        # The requests reached every worker, and /metrics on any of them counts all of them.
        wait_for(lambda: metric(url, 'bootstrap_node_http_requests_total{route="/ignition"') == 40,
                 what="/metrics adding up the workers' counters")
        def every_worker_answered():  # each publishes its counters once a second
            published = [json.loads(p.read_text()) for p in (generated / "run" / "workers").glob("*.json")]
            return all(any(route == "/ignition" for route, _, _ in w["requests"]) for w in published)
        wait_for(every_worker_answered, what="each of the three workers to have answered /ignition")
        request = urllib.request.Request(f"{url}/events", method="POST", headers=bearer(credential),
                                         data=json.dumps({"mac": MAC, "phase": "installed"}).encode())
        with urllib.request.urlopen(request) as r:
            assert r.status == 200

        def installed_everywhere():
            views = []
            for _ in range(9):  # new connections: several workers answer
                with urllib.request.urlopen(f"{url}/status") as r:
                    views.append(json.loads(r.read()))
            return all(next(n for n in v["nodes"] if n["mac"] == MAC)["phase"] == "installed" for v in views)
        wait_for(installed_everywhere, what="every worker's /status showing the callback")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, proc.stderr.read().decode()
    assert children_of(proc.pid) == []
    assert not (generated / "serve.json").exists()


def test_workers_die_with_a_killed_leader(generated):
    proc, _ = start(generated, 2)
    workers = children_of(proc.pid)
    assert len(workers) == 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            return True
    wait_for(lambda: all(gone(pid) for pid in workers), what="the worker to exit after its leader was killed")
    (generated / "serve.json").unlink(missing_ok=True)


# -- what the review of the first version found ------------------------------------------------------
def test_a_write_cut_short_does_not_swallow_the_next_line(tmp_path, monkeypatch):
    from app.events import log as log_module

    a, b = worker_logs(tmp_path)
    real_write, calls = os.write, []

    def filling_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])  # half the line
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(log_module.os, "write", filling_disk)
    with a.transaction():
        a.record(Event("alert", mac=MAC, source="http", detail={"reason": "torn"}))
        assert not a.saved()  # so serve answers 503 instead of acting on it
    monkeypatch.setattr(log_module.os, "write", real_write)
    a.record(Event("alert", mac=MAC, source="http", detail={"reason": "whole"}))
    with a.transaction():
        assert a.saved()
    b.follow()
    assert b.alerts["whole"] == 1 and b.alerts["torn"] == 0  # the fragment was ended, not glued on


async def test_a_config_the_log_could_not_record_is_not_served(tmp_path):
    from app.events.log import SharedEventLog as Shared
    from tests.support.serve import running, write_json

    data = tmp_path / "matchbox"
    write_json(data / "profiles/p.json", {"id": "p", "ignition_id": "n.ign", "boot": {"kernel": "/k"}})
    write_json(data / "groups/n.json", {"id": "n", "profile": "p", "selector": {"mac": MAC}})
    write_json(data / "ignition/n.ign", {"ignition": {"version": "3.4.0"}})

    def full_disk(data: bytes) -> int:
        raise OSError(28, "No space left on device")

    async with running(data, tmp_path, event_log=Shared) as (http, ctx):
        async with http.get(f"/ipxe?mac={MAC}") as r:
            assert r.status == 200
        ctx.events._append = full_disk
        async with http.get(f"/ignition?mac={MAC}") as r:
            assert r.status == 503 and "could not be written" in await r.text()


def test_a_log_truncated_by_hand_is_not_taken_for_an_empty_state(tmp_path):
    a, b = worker_logs(tmp_path)
    open_window(a)
    a.record(Event("installed", mac=MAC, source="node"))
    b.follow()
    (tmp_path / "events.jsonl").write_text("")  # `: > events.jsonl`, logrotate's copytruncate
    b.record(Event("http", source="http"))
    assert b.state(MAC).installed and a.is_installed(MAC)  # an installed node is not reinstalled


def test_a_command_line_event_waits_for_the_workers_lock(tmp_path):
    import fcntl
    import threading

    a, _ = worker_logs(tmp_path)
    with a.transaction():  # a worker deciding: the lock is held
        writer = threading.Thread(target=append_event, args=(tmp_path, Event("reinstall", mac=MAC, source="cli")))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive() and '"reinstall"' not in (tmp_path / "events.jsonl").read_text()
    writer.join(5)
    assert '"reinstall"' in (tmp_path / "events.jsonl").read_text()
    with open(tmp_path / "run" / "events.lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # and released it


def test_a_starting_worker_does_not_pass_a_line_still_being_written(tmp_path):
    a, _ = worker_logs(tmp_path)
    line = Event("reinstall", mac=MAC, source="cli").line().encode()
    with open(tmp_path / "events.jsonl", "ab") as f:
        f.write(line[:20])
    late = SharedEventLog(tmp_path, KNOWN)
    late.open()
    with open(tmp_path / "events.jsonl", "ab") as f:
        f.write(line[20:])
    late.follow()
    assert late.state(MAC) is not None


def test_a_worker_that_dies_is_started_again(generated):
    proc, url = start(generated, 2)
    try:
        (first,) = children_of(proc.pid)
        os.kill(first, signal.SIGKILL)
        replacement = wait_for(lambda: [p for p in children_of(proc.pid) if p != first], what="a new worker")
        assert len(replacement) == 1
        wait_for(lambda: '"worker-restarted"' in (generated / "events.jsonl").read_text(), what="the event")
        answers = asyncio.run(fetch_many(url, "/boot.ipxe", 20))
        assert [status for status, _ in answers] == [200] * 20
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0, proc.stderr.read().decode()
