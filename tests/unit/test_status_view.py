"""The status view-model and its HTML and terminal renderings, in memory (an EventLog that never
opened its file applies events without writing them)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from app.cli.progress import Display, status_lines, status_renderable
from app.events import Event, EventKind, EventLog
from app.serve.boot import policy
from app.status import page as status_page
from app.status.facts import Download, Facts
from app.status.text import duration
from app.status.view import build, segments

A, B, C = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c"
T = "2025-03-14T09:00:{:02d}.000Z"
NOW = 1741942800.0 + 59  # 09:00:59Z on that day
HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>', "[/]", "[bold red]x[/]", "&amp;"]


def log_of(*events: Event) -> EventLog:
    log = EventLog(Path("/nonexistent/bootstrap-node-test"), {A: "node-a", B: "node-b", C: "node-c"})
    for event in events:
        log.record(event)
    return log


def view_of(*events: Event, facts: Facts | None = None, assets: Path | None = None):
    facts = facts or Facts()
    for event in events:
        facts.apply(event)
    return build(log_of(*events), assets, NOW, facts)


def test_segments_run_from_each_phase_to_the_next_and_the_last_until_now():
    history = [(T.format(0), "dhcp"), (T.format(2), "tftp"), (T.format(10), "ipxe")]
    assert [(s.phase, s.seconds) for s in segments(history, NOW)] == [("dhcp", 2), ("tftp", 8), ("ipxe", 49)]


def test_ready_ends_the_path_and_a_failure_stops_the_clock():
    view = view_of(Event("dhcp", mac=A, ts=T.format(0)), Event("ready", mac=A, ts=T.format(30)),
                   Event("dhcp", mac=B, ts=T.format(0)), Event("failed", mac=B, message="no disk", ts=T.format(20)))
    a, b, c = view.nodes
    assert [(s.phase, s.seconds) for s in a.segments] == [("dhcp", 30), ("ready", 0)]
    assert [(s.phase, s.seconds) for s in b.segments] == [("dhcp", 20)]  # not 59: it stopped at the failure
    assert (b.failed, b.error, c.phase, c.step) == (True, "no disk", "pending", 0)
    assert (view.summary.ready, view.summary.failed, view.summary.waiting) == (1, 1, True)


def test_image_downloads_add_up_per_node_and_others_are_ignored():
    image = "/assets/flatcar/1/flatcar_production_image.bin.bz2"
    facts = Facts()
    for event in [Event(EventKind.BOOT_ASSET, mac=A, detail={"file": image, "bytes": 100}),
                  Event(EventKind.BOOT_ASSET, mac=A, detail={"file": image, "bytes": 50}),  # a resumed range
                  Event(EventKind.BOOT_ASSET, mac=A, detail={"file": "/assets/x.vmlinuz", "bytes": 999}),
                  Event(EventKind.BOOT_ASSET, mac=B, detail={"file": image, "bytes": "garbage"}),
                  Event("http", detail={"file": image, "bytes": 7})]:  # no MAC: nobody's
        facts.apply(event)
    assert facts.downloads == {A: Download(image, 150), B: Download(image, 0)}
    facts.apply(Event("reinstall", mac=A))
    assert A not in facts.downloads


def test_download_percent_needs_a_size():
    assert Download("f", 50, 200).percent == 25 and Download("f", 50).percent is None


def test_alerts_group_by_reason_with_the_last_sender():
    def alert(remote):
        return Event("alert", mac=A, detail={"reason": policy.CALLBACK_REFUSED, "remote": remote, "route": "events"})
    view = view_of(alert("10.0.0.1"), alert("10.0.0.2"),
                   Event("alert", detail={"reason": policy.NO_WINDOW, "remote": "10.0.0.9"}))
    assert [(g.reason, g.count, g.last_sender) for g in view.alerts] == [
        (policy.CALLBACK_REFUSED, 2, "10.0.0.2"), (policy.NO_WINDOW, 1, "10.0.0.9")]
    assert view.alerts[0].last_node == "node-a"


def test_json_keeps_the_first_shape_and_adds_the_rest():
    data = view_of(Event("dhcp", mac=A, ts=T.format(0)), Event("discovered", mac="52:54:00:00:00:99",
                                                                detail={"ip": "10.0.0.5"}, ts=T.format(1)),
                   Event("dnsmasq-restarted", ts=T.format(3))).as_json()
    node = data["nodes"][0]
    assert (node["name"], node["phase"], node["step"], node["history"]) == ("node-a", "dhcp", "1/11",
                                                                            [{"ts": T.format(0), "phase": "dhcp"}])
    assert data["discovered"] == ["52:54:00:00:00:99"] and data["alerts"] == {}
    assert data["unknown_machines"] == [{"mac": "52:54:00:00:00:99", "address": "10.0.0.5", "first_seen": T.format(1)}]
    assert data["dnsmasq_restarts"] == 1 and data["summary"]["nodes"] == 3


@pytest.mark.parametrize("duration_s, text", [(0, "0s"), (59.4, "59s"), (61, "1m 01s"), (3725, "1h 02m")])
def test_durations(duration_s, text):
    assert duration(duration_s) == text


def hostile_view():
    return view_of(Event("dhcp", mac=A, ts=T.format(0)),
                   *[Event("failed", mac=A, message=h, ts=T.format(1)) for h in HOSTILE[:1]],
                   Event("failed", mac=B, message=" ".join(HOSTILE), ts=T.format(2)),
                   *[Event("discovered", mac=h, detail={"ip": h}) for h in HOSTILE],
                   *[Event("alert", mac=A, detail={"reason": h, "remote": h, "route": h}) for h in HOSTILE])


def test_html_escapes_everything_from_the_network():
    page = status_page.html(hostile_view())
    assert "<script>" not in page and "<img" not in page and "onerror=alert(2)>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&amp;amp;" in page  # escaped once more: shown as typed
    assert re.search(r'<meta http-equiv="Content-Security-Policy" content="default-src \'none\';', page)


def test_html_has_viewport_refresh_and_no_script():
    page = status_page.html(view_of(Event("dhcp", mac=A, ts=T.format(0))))
    assert '<meta name="viewport"' in page and '<meta http-equiv="refresh" content="5">' in page
    assert "<script" not in page and "<svg" in page and "<title>dhcp: 59s" in page


def test_terminal_renders_markup_like_text_as_typed():
    """`[/]` in a callback message crashed `status` when rows were passed to rich as markup."""
    from rich.console import Console
    console = Console(file=io.StringIO(), width=400, color_system=None)
    view = hostile_view()
    console.print(status_renderable(view, "title [/]"))
    out = console.file.getvalue()
    assert "[bold red]x[/]" in out and "title [/]" in out and "<script>alert(1)</script>" in out
    assert any("[/]" in line for line in status_lines(view).values())


def test_lines_print_only_what_changed():
    printed: list[str] = []
    display = Display(tty=False, echo=printed.append)
    display.show(lambda: None, {"a": "node-a: dhcp", "b": "node-b: pending"})
    display.show(lambda: None, {"a": "node-a: dhcp", "b": "node-b: tftp"})
    display.show(lambda: None, {"a": "node-a: dhcp", "b": "node-b: tftp"})
    assert printed == ["node-a: dhcp", "node-b: pending", "node-b: tftp"]


def test_downloads_after_a_compaction_are_still_followed(tmp_path):
    log = tmp_path / "events.jsonl"
    image = "/assets/flatcar/flatcar_production_image.bin.bz2"
    before = Event("http", mac="52:54:00:00:00:01", source="http", detail={"file": image, "bytes": 1000})
    log.write_text(before.line() + "\n" + "".join(Event("http", source="http").line() + "\n" for _ in range(50)))
    facts = Facts()
    facts.follow(log)
    # serve compacts: a new, shorter file that starts with the marker and node states
    compacted = tmp_path / "events.new"
    after = Event("http", mac="52:54:00:00:00:02", source="http", detail={"file": image, "bytes": 500})
    compacted.write_text(Event("log-compacted", source="serve").line() + "\n" + after.line() + "\n")
    compacted.replace(log)
    facts.follow(log)
    assert facts.downloads["52:54:00:00:00:01"].sent == 1000  # gathered before: kept
    assert facts.downloads["52:54:00:00:00:02"].sent == 500  # after the compaction: seen
