"""Commands about nodes, from the event log: status, discover, reinstall. They work while serve runs
and after it stopped."""

from __future__ import annotations

import typer

from app.cli.common import Paths, command, fail, known_nodes
from app.events import Event, EventLog, append_event
from app.layout import EVENTS


@command()
def status(paths: Paths) -> None:
    """Each node's phase from the event log."""
    from rich.console import Console
    from rich.table import Table

    from app.serve.status_page import HEADERS, rows

    log = EventLog(paths.output, known_nodes(paths.config))
    table = Table(*HEADERS, title=f"bootstrap-node: {paths.output / EVENTS}")
    for row in rows(log.snapshot()):
        table.add_row(*row)
    Console(highlight=False).print(table)


@command()
def discover(paths: Paths) -> None:
    """MACs that PXE-booted but are in no group, as a ready-to-paste `nodes:` snippet."""
    from app.serve.discovery import nodes_snippet, unknown_machines

    typer.echo(nodes_snippet(unknown_machines(paths.output / EVENTS, known_nodes(paths.config))), nl=False)


@command()
def reinstall(paths: Paths, name: str) -> None:
    """Let a node install again on its next PXE boot (clears the reinstall-loop guard)."""
    by_name = {n: m for m, n in known_nodes(paths.config).items()}
    if name not in by_name:
        raise fail(f"no node named {name!r} in {paths.config}")
    append_event(paths.output, Event("reinstall", mac=by_name[name], node=name, source="cli"))
    typer.echo(f"{name} will install again on its next PXE boot (a running serve takes this within a second)")
