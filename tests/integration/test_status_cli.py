"""`status` and `discover` from the command line over an event log on disk, and `/status` over a
socket: the same view-model, so the same data."""

from __future__ import annotations

import json

import yaml

from app.cli import app
from app.events import Event
from app.status.facts import asset_size
from tests.integration.conftest import runner
from tests.support.serve import running

A, B, STRANGER = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:99"
MARKUP = "[/] [bold]not bold[/bold] <b>x</b>"


def write_log(output, events: list[Event]) -> None:
    output.mkdir(parents=True, exist_ok=True)
    with (output / "events.jsonl").open("a") as f:
        f.writelines(e.line() for e in events)


def rack(output) -> None:
    """Two nodes that stopped (one Ready, one failed: no clock in their figures) and a stranger."""
    write_log(output, [Event("dhcp", mac=A, ts="2025-03-14T09:00:00.000Z"),
                       Event("ready", mac=A, ts="2025-03-14T09:10:00.000Z"),
                       Event("dhcp", mac=B, ts="2025-03-14T09:00:05.000Z"),
                       Event("failed", mac=B, message=MARKUP, ts="2025-03-14T09:03:00.000Z"),
                       Event("discovered", mac=STRANGER, detail={"ip": "10.0.0.9"}, ts="2025-03-14T09:01:00.000Z"),
                       Event("alert", mac=A, detail={"reason": "refused [/]", "remote": "10.0.0.66"}),
                       Event("dnsmasq-restarted")])


def cli(output, *args: str):
    return runner.invoke(app, ["--config", "/nonexistent/cluster.yaml", "--output", str(output), *args],
                         env={"COLUMNS": "200"})


def test_status_shows_markup_like_messages_as_typed(tmp_path):
    rack(tmp_path)
    result = cli(tmp_path, "status")
    assert result.exit_code == 0, result.output
    assert MARKUP in result.output  # shown as typed, not interpreted
    assert "refused [/]" in result.output and "dnsmasq restarted 1×" in result.output


async def test_status_json_is_what_get_status_answers(tmp_path):
    rack(tmp_path / "out")
    result = cli(tmp_path / "out", "status", "--format", "json")
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.output)
    (tmp_path / "data").mkdir()
    # The same log read the same way (serve itself keeps states only for its tree's nodes).
    async with running(tmp_path / "data", tmp_path / "out", only_known=False) as (http, _):
        async with http.get("/status") as r:
            from_http = await r.json()
    for data in (from_cli, from_http):
        del data["generated"]
    assert from_cli == from_http
    assert [n["phase"] for n in from_cli["nodes"]] == ["ready", "dhcp"]
    assert from_cli["nodes"][1]["error"] == MARKUP and from_cli["discovered"] == [STRANGER]


def test_discover_formats(tmp_path):
    rack(tmp_path)
    snippet = cli(tmp_path, "discover").output
    assert f'mac: "{STRANGER}"' in snippet and snippet.startswith("# machines")
    expected = [{"mac": STRANGER, "address": "10.0.0.9", "first_seen": "2025-03-14T09:01:00.000Z"}]
    assert json.loads(cli(tmp_path, "discover", "--format", "json").output) == expected
    assert yaml.safe_load(cli(tmp_path, "discover", "--format", "yaml").output) == expected
    assert cli(tmp_path, "discover", "--format", "xml").exit_code == 2


def test_watch_without_a_terminal_prints_one_line_per_change_until_ctrl_c(tmp_path, monkeypatch):
    rack(tmp_path)
    looks = iter([lambda: write_log(tmp_path, [Event("tftp", mac=STRANGER)]), lambda: None])

    def sleep(_seconds):
        step = next(looks, None)
        if step is None:
            raise KeyboardInterrupt  # what Ctrl-C does to the sleeping watch
        step()
    monkeypatch.setattr("app.cli.nodes.time.sleep", sleep)
    result = cli(tmp_path, "status", "--watch")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(set(lines)), "a line was repeated though nothing changed"
    assert f"(unknown) ({STRANGER}): tftp, step 2/11" in lines  # the change, once
    assert sum("(52:54:00:00:00:0a)" in line for line in lines) == 1  # unchanged node: printed once


def test_watch_and_json_do_not_mix(tmp_path):
    result = cli(tmp_path, "status", "--watch", "--format", "json")
    assert result.exit_code != 0 and "--watch" in result.output


def test_asset_size_stays_under_the_root(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "image.bin.bz2").write_bytes(b"x" * 10)
    (tmp_path / "outside").write_bytes(b"x" * 5)
    root = tmp_path / "assets"
    assert asset_size(root, "/assets/image.bin.bz2") == 10
    assert asset_size(root, "/assets/../outside") is None
    assert asset_size(root, "/assets/missing") is None
    assert asset_size(None, "/assets/image.bin.bz2") is None


def test_without_an_event_log_status_and_discover_say_so_and_fail(tmp_path):
    for args in (["status"], ["status", "--format", "json"], ["discover"], ["discover", "--format", "json"]):
        result = cli(tmp_path / "output", *args)
        assert result.exit_code == 1, (args, result.output)
        assert f"no event log at {tmp_path / 'output' / 'events.jsonl'}" in result.output
        assert "--output" in result.output


def test_an_empty_log_is_a_log(tmp_path):
    write_log(tmp_path, [Event("serve-started", source="serve")])
    assert cli(tmp_path, "status").exit_code == 0
    assert cli(tmp_path, "discover").exit_code == 0


def test_watch_waits_for_a_log_that_is_not_there_yet(tmp_path, monkeypatch):
    def sleep(_seconds):
        raise KeyboardInterrupt
    monkeypatch.setattr("app.cli.nodes.time.sleep", sleep)
    result = cli(tmp_path, "status", "--watch")
    assert result.exit_code == 0 and "no event log" in result.output and "watching for it" in result.output
