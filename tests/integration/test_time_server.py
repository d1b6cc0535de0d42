"""`bootstrap.time_server`: generate writes chrony.conf and points every node at the appliance first;
serve's supervisor runs a real chronyd (Debian's chrony) that a real NTP client (chronyd -Q, which
measures the offset and never sets the clock) gets time from, restarts it when it dies, and stops it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from app.events import Event
from app.serve.supervise.child import ChildFailed
from app.serve.supervise.chrony import Chrony
from tests.support.paths import EXAMPLE
from tests.support.processes import start_serve, wait_for
from tests.unit.test_generate import files_of, ignition, run_generate

NETWORK = "/etc/systemd/network/00-lan0.network"


def with_time_server(tmp_path: Path) -> Path:
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text().replace("  http_port: 8080", "  http_port: 8080\n  time_server: true"))
    return config


def test_generate_writes_chrony_conf_and_nodes_sync_with_the_appliance_first(tmp_path):
    output = tmp_path / "output"
    assert run_generate(output, config=with_time_server(tmp_path)).exit_code == 0
    conf = (output / "chrony.conf").read_text().splitlines()
    assert {"port 123", "bindaddress 10.0.0.2", "allow 10.0.0.0/24", "local stratum 10", "cmdport 0"} <= set(conf)
    assert f"pidfile {output.resolve()}/run/chronyd.pid" in conf
    for node in ("cp-1", "worker-2"):
        lines = files_of(ignition(output, node))[NETWORK].decode().splitlines()
        assert [line for line in lines if line.startswith("NTP=")] == ["NTP=10.0.0.2", "NTP=10.0.0.1"]


def test_without_time_server_there_is_no_chrony_conf(tmp_path):
    output = tmp_path / "output"
    assert run_generate(output).exit_code == 0
    assert not (output / "chrony.conf").is_file()


def test_turning_the_time_server_off_and_on_leaves_no_dangling_link(tmp_path):
    output = tmp_path / "output"
    on = with_time_server(tmp_path)
    assert run_generate(output, config=on).exit_code == 0
    assert (output / "chrony.conf").is_symlink() and (output / "chrony.conf").is_file()
    assert run_generate(output).exit_code == 0  # the example: no time server
    assert not os.path.lexists(output / "chrony.conf")
    assert run_generate(output, config=on).exit_code == 0
    assert (output / "chrony.conf").is_file()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ntp_query(port: int) -> subprocess.CompletedProcess:
    """One real NTP exchange with the server: chronyd's client mode, which prints the offset."""
    return subprocess.run(["chronyd", "-Q", "-t", "10", "-f", "/dev/null",
                           f"server 127.0.0.1 port {port} iburst maxsamples 1"],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def chrony_conf(tmp_path) -> tuple[Path, int]:
    """The generated chrony.conf, on a free loopback port (port 123 may be taken on a test machine)."""
    if shutil.which("chronyd") is None:
        pytest.skip("needs chronyd (Debian: chrony)")
    if os.geteuid() != 0:
        pytest.skip("chronyd needs root to start (it drops to _chrony itself)")
    output = tmp_path / "output"
    assert run_generate(output, config=with_time_server(tmp_path)).exit_code == 0
    port = free_udp_port()
    text = (output / "chrony.conf").read_text()
    text = re.sub(r"^port 123$", f"port {port}", text, flags=re.M)
    text = text.replace("bindaddress 10.0.0.2", "bindaddress 127.0.0.1").replace("allow 10.0.0.0/24", "allow 127.0.0.1")
    conf = tmp_path / "chrony-test.conf"
    conf.write_text(text)
    return conf, port


def test_serve_runs_chronyd_from_the_tree_and_stops_it_with_itself(chrony_conf, tmp_path):
    conf, port = chrony_conf
    output = tmp_path / "output"
    (output / "chrony.conf").unlink()  # the generated link: this test's copy listens on a free port
    (output / "chrony.conf").write_text(conf.read_text())
    proc, _, _ = start_serve(output)
    try:
        wait_for(lambda: ntp_query(port).returncode == 0, timeout=60, what="an NTP answer from serve's chronyd")
        events = [json.loads(line) for line in (output / "events.jsonl").read_text().splitlines()]
        chronyd = next(e for e in events if e["kind"] == "chronyd-started")["detail"]["pid"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read().decode()
    with pytest.raises(ProcessLookupError):
        os.kill(chronyd, 0)
    assert ntp_query(port).returncode != 0


async def _until(events: list[Event], kind: str, count: int = 1) -> list[Event]:
    for _ in range(300):
        found = [e for e in events if e.kind == kind]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {count} {kind} event(s): {[e.kind for e in events]}")


def test_a_real_ntp_client_gets_time_and_a_dead_chronyd_is_restarted(chrony_conf):
    conf, port = chrony_conf

    async def scenario() -> None:
        events: list[Event] = []
        chrony = Chrony(conf, events.append)
        task = asyncio.create_task(chrony.run())
        first = (await _until(events, "chronyd-started"))[0].detail["pid"]
        answer = await asyncio.to_thread(ntp_query, port)
        assert answer.returncode == 0 and "System clock wrong by" in answer.stdout + answer.stderr, answer
        os.kill(first, signal.SIGKILL)  # chronyd dies: the supervisor starts it again
        await _until(events, "chronyd-exited")
        second = (await _until(events, "chronyd-started", 2))[1].detail["pid"]
        assert second != first
        again = await asyncio.to_thread(ntp_query, port)
        assert again.returncode == 0, again
        await chrony.stop()
        await task
        await asyncio.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.kill(second, 0)

    asyncio.run(scenario())


def test_nothing_answers_without_it(chrony_conf):
    _, port = chrony_conf
    assert ntp_query(port).returncode != 0


def test_a_taken_port_is_explained(chrony_conf):
    conf, port = chrony_conf
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))

        async def scenario() -> str:
            chrony = Chrony(conf, lambda e: None, max_quick_deaths=2, quick_seconds=30)
            with pytest.raises(ChildFailed) as failed:
                await asyncio.wait_for(chrony.run(), 60)
            return str(failed.value)

        message = asyncio.run(scenario())
    # chronyd 4.3 does not exit when its port is taken: it says so and runs on, serving no one; serve
    # stops it and says why, instead of restarting it (the same start would fail the same way)
    assert "chronyd exited" in message and "could not open its NTP socket" in message
    assert "chronyd: " in message and f":{port}" in message  # chronyd's own line, with the port
