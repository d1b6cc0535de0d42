"""Commands that end with a working cluster: wait (the health gate) and init (everything)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from app.cli import app, load_or_exit
from app.wait import EXIT_INTERRUPTED, Outcome, WaitOptions, addon_files, wait_for_cluster

HEADERS = ["node", "role", "phase (events)", "API", "last error"]


class Progress:
    """A live table on a terminal; otherwise one plain line per change of a node's row."""

    def __init__(self) -> None:
        self.live = None
        self.last: dict[str, list[str]] = {}
        if sys.stdout.isatty():
            from rich.live import Live
            self.live = Live(self._table([]), refresh_per_second=2, transient=False)

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def _table(self, rows):
        from rich.table import Table
        table = Table(*HEADERS, title="bootstrap-node wait")
        for row in rows:
            table.add_row(*row)
        return table

    def __call__(self, rows: list[list[str]]) -> None:
        if self.live:
            self.live.update(self._table(rows))
            return
        for row in rows:
            if self.last.get(row[0]) != row:
                self.last[row[0]] = row
                typer.echo(f"{row[0]}: phase {row[2]}, API {row[3]}" + (f", error: {row[4]}" if row[4] else ""))


def wait_options(api_timeout: float, nodes_timeout: float, poll: float, server: list[str] | None,
                 templates: Path | None) -> WaitOptions:
    from app.render.templates import BUILTIN
    return WaitOptions(api_timeout=api_timeout, nodes_timeout=nodes_timeout, poll=poll, servers=server or [],
                       addons=addon_files(templates, BUILTIN))


def finish(outcome: Outcome) -> None:
    typer.echo(outcome.message, err=outcome.code != 0)
    raise typer.Exit(outcome.code)


ApiTimeout = Annotated[float, typer.Option(help="Seconds for the API server to answer /readyz.")]
NodesTimeout = Annotated[float, typer.Option(help="Seconds, once the API answers, for every node to be Ready.")]
Poll = Annotated[float, typer.Option(help="Seconds between checks.")]
Server = Annotated[Optional[list[str]], typer.Option(help="API endpoint(s) to try instead of the VIP, "
                                                         "api_server_name and controllers (https://host:port).")]


@app.command("wait")
def wait_command(
    ctx: typer.Context,
    api_timeout: ApiTimeout = 1800.0,
    nodes_timeout: NodesTimeout = 900.0,
    poll: Poll = 5.0,
    server: Server = None,
) -> None:
    """Wait until the cluster is healthy, apply the add-ons, then write <output>/kubeconfig.

    Exit 0 healthy, 3 the API never answered, 4 nodes not Ready in time, 5 add-ons failed,
    130 interrupted.
    """
    cluster = load_or_exit(ctx.obj.config)
    opts = wait_options(api_timeout, nodes_timeout, poll, server, ctx.obj.templates)
    stop = threading.Event()
    try:
        with Progress() as progress:
            outcome = _in_thread(lambda: wait_for_cluster(cluster, ctx.obj.output, opts, stop, progress), stop)
    except KeyboardInterrupt:
        outcome = Outcome(EXIT_INTERRUPTED, "interrupted")
    finish(outcome)


def _in_thread(fn, stop: threading.Event):
    """Run `fn` in a thread so Ctrl-C reaches us at once; on Ctrl-C, tell it to stop and wait."""
    result: list = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        worker.join(30)
        return Outcome(EXIT_INTERRUPTED, "interrupted")
    return result[0]
