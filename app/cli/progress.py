"""Progress in a terminal: a live table on a TTY, one plain line per change otherwise (a CI log or
`make lab`'s log gets each change once, not the whole table on every refresh).

`wait`/`init` (rows from the health gate) and `status --watch` (the status view-model) share the
display. Every string from the network becomes a `rich.text.Text`, never markup (a callback message
like `[/]` is shown as typed instead of crashing the renderer), and goes through `terminal_safe`
first: an ESC sequence or a `\r\n` in a message is spelled out, never obeyed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from app.events import PHASES
from app.logs import terminal_safe
from app.status.text import disks_text, download_text, duration, last_error, senders_text, summary_text
from app.status.view import StatusView

HEADERS = ["node", "role", "phase (events)", "API", "last error"]
STATUS_HEADERS = ["node", "mac", "phase", "step", "in phase", "download", "error"]
DOWNLOAD_COLUMN = STATUS_HEADERS.index("download")


class Display:
    """`show(renderable, lines)`: on a TTY the renderable replaces the last one; otherwise each
    line whose key is new or whose text changed is printed."""

    def __init__(self, tty: bool | None = None, echo: Callable[[str], None] = typer.echo) -> None:
        self.live = None
        self.echo = echo
        self.last: dict[str, str] = {}
        if sys.stdout.isatty() if tty is None else tty:
            from rich.live import Live
            self.live = Live(refresh_per_second=2, transient=False)

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def show(self, renderable: Callable[[], object], lines: dict[str, str]) -> None:
        if self.live:
            self.live.update(renderable())
            return
        for key, line in lines.items():
            if self.last.get(key) != line:
                self.last[key] = line
                self.echo(terminal_safe(line))


def text_table(title: str, headers: list[str], rows: list[list[str]]):
    """The last column (the error) wraps; the others keep whole (a MAC cut short is no use)."""
    from rich.table import Column, Table
    from rich.text import Text
    columns = [Column(h, no_wrap=i < len(headers) - 1) for i, h in enumerate(headers)]
    table = Table(*columns, title=Text(terminal_safe(title)))
    for row in rows:
        table.add_row(*(Text(terminal_safe(cell)) for cell in row))  # text from the network is never markup
    return table


class Progress(Display):
    """What the health gate reports to: rows of HEADERS."""

    def __call__(self, rows: list[list[str]]) -> None:
        self.show(lambda: text_table("bootstrap-node wait", HEADERS, rows),
                  {row[0]: f"{row[0]}: phase {row[2]}, API {row[3]}" + (f", error: {row[4]}" if row[4] else "")
                   for row in rows})


def status_rows(view: StatusView) -> list[list[str]]:
    return [[n.name, n.mac, n.phase, f"{n.step}/{len(PHASES)}" if n.step else "-",
             duration(n.segments[-1].seconds) if n.segments and not n.ready else "-",
             download_text(n.download) if n.download and not n.installed else "", n.error]
            for n in view.nodes]


def status_renderable(view: StatusView, title: str):
    """The table, then the summary and the alerts, all as text."""
    from rich.console import Group
    from rich.text import Text
    rows = status_rows(view)
    headers = STATUS_HEADERS
    if not any(row[DOWNLOAD_COLUMN] for row in rows):  # no column of blanks
        headers = headers[:DOWNLOAD_COLUMN] + headers[DOWNLOAD_COLUMN + 1:]
        rows = [row[:DOWNLOAD_COLUMN] + row[DOWNLOAD_COLUMN + 1:] for row in rows]
    return Group(text_table(title, headers, rows), Text(terminal_safe(summary_text(view))),
                 *(Text(terminal_safe(line)) for line in alert_lines(view).values()),
                 *(Text(terminal_safe(line)) for line in disk_lines(view).values()))


def status_lines(view: StatusView) -> dict[str, str]:
    """One line per node, the summary and each alert, keyed so a change prints only what changed."""
    lines = {f"node {n.mac}": f"{n.name} ({n.mac}): {n.phase}" + (f", step {n.step}/{len(PHASES)}" if n.step else "")
             + (f"; {last_error(n)}" if n.error else "") for n in view.nodes}
    lines["summary"] = summary_text(view)
    return lines | alert_lines(view) | disk_lines(view)


def disk_lines(view: StatusView) -> dict[str, str]:
    """The disks of each node whose install failed, as it reported them (`status --format json` has
    every node's)."""
    return {f"disks {n.mac} {i}": line for n in view.nodes if n.failed and n.disks
            for i, line in enumerate(disks_text(n))}


def alert_lines(view: StatusView) -> dict[str, str]:
    lines = {}
    for group in view.alerts:
        senders = senders_text(group)
        lines[f"alert {group.reason}"] = f"alert: {group.reason}: {group.count}×" + (f" ({senders})" if senders else "")
    if view.dnsmasq_restarts:
        lines["dnsmasq"] = f"alert: dnsmasq restarted {view.dnsmasq_restarts}× (last at {view.last_dnsmasq_restart})"
    if view.write_failures:
        lines["write-failures"] = f"alert: {view.write_failures} event(s) could not be written to the event log"
    for machine in view.unknown:
        lines[f"unknown {machine.mac}"] = (f"unknown machine {machine.mac}"
                                           + (f" from {machine.address}" if machine.address else "")
                                           + ": `bootstrap-node discover` prints a nodes: snippet")
    return lines

