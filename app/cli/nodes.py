"""Commands about nodes, from the event log: status, discover, reinstall. They work while serve runs
and after it stopped."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from enum import Enum
from typing import Annotated

import typer

from app.cli.common import DEFAULT_ASSETS, AssetsOpt, Paths, command, fail, known_nodes
from app.events import Event, EventKind, EventLog, append_event
from app.layout import EVENTS


class StatusFormat(str, Enum):
    text = "text"
    json = "json"


class DiscoverFormat(str, Enum):
    snippet = "snippet"
    yaml = "yaml"
    json = "json"


WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Keep showing changes until Ctrl-C: a live table "
                                                              "on a terminal, one line per change otherwise.")]
IntervalOpt = Annotated[float, typer.Option(help="Seconds between looks at the event log with --watch.")]


@command()
def status(
    paths: Paths,
    format: Annotated[StatusFormat, typer.Option("--format", help="text: a table; json: what GET /status "
                                                                   "answers.")] = StatusFormat.text,
    watch: WatchOpt = False,
    interval: IntervalOpt = 1.0,
    assets: AssetsOpt = DEFAULT_ASSETS,
) -> None:
    """Each node's phase, download and last error, and the alerts, from the event log."""
    from app.status.view import build

    if not watch:
        _require_event_log(paths)
    elif not (paths.output / EVENTS).exists():
        typer.echo(f"{_no_event_log(paths)}; watching for it", err=True)
    log = EventLog(paths.output, known_nodes(paths.config))
    if format is StatusFormat.json:
        if watch:
            raise fail("--watch shows a table or lines; for JSON, poll GET /status or run without --watch")
        typer.echo(json.dumps(build(log, assets).as_json(), indent=2))
        return
    if watch:
        _watch(log, paths, assets, interval)
        return
    from rich.console import Console

    from app.cli.progress import status_renderable
    Console(highlight=False).print(status_renderable(build(log, assets), _title(paths)))


def _no_event_log(paths: Paths) -> str:
    return (f"no event log at {paths.output / EVENTS}: `bootstrap-node serve` has never run with this output "
            f"directory (pass the --output it uses)")


def _require_event_log(paths: Paths) -> None:
    """Status read from a log that is not there is no status at all: say so rather than show nothing."""
    if not (paths.output / EVENTS).exists():
        raise fail(_no_event_log(paths))


def _title(paths: Paths) -> str:
    return f"bootstrap-node: {paths.output / EVENTS}"


def _watch(log: EventLog, paths: Paths, assets, interval: float) -> None:
    from app.cli.progress import Display, status_lines, status_renderable
    from app.status.view import build

    try:
        with Display() as display:
            while True:
                log.follow(external_only=False)
                view = build(log, assets)
                display.show(lambda view=view: status_renderable(view, _title(paths)), status_lines(view))
                time.sleep(max(interval, 0.1))
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends: not an error


@command()
def discover(
    paths: Paths,
    format: Annotated[DiscoverFormat, typer.Option("--format", help="snippet: a ready-to-paste `nodes:` list; "
                                                                     "yaml or json: the machines as data.")]
        = DiscoverFormat.snippet,
) -> None:
    """MACs that PXE-booted but are in no group (by default as a ready-to-paste `nodes:` snippet, with the
    disks the nodes reported as comments)."""
    from app.logs import terminal_safe
    from app.status.discovery import disks_comment, nodes_snippet, unknown_machines

    _require_event_log(paths)
    known = known_nodes(paths.config)
    if format is DiscoverFormat.snippet:
        typer.echo(nodes_snippet(unknown_machines(paths.output / EVENTS, known)), nl=False)
        disks = disks_comment(EventLog(paths.output, known).snapshot())
        typer.echo("".join(terminal_safe(line) + "\n" for line in disks.splitlines()), nl=False)
        return
    from app.status.view import build

    machines = [asdict(u) for u in build(EventLog(paths.output, known)).unknown]
    if format is DiscoverFormat.json:
        typer.echo(json.dumps(machines, indent=2))
    else:
        import yaml
        typer.echo(yaml.safe_dump(machines, sort_keys=False) if machines else "[]\n", nl=False)


@command()
def reinstall(paths: Paths, name: str) -> None:
    """Let a node install again on its next PXE boot (clears the reinstall-loop guard)."""
    by_name = {n: m for m, n in known_nodes(paths.config).items()}
    if name not in by_name:
        raise fail(f"no node named {name!r} in {paths.config}")
    append_event(paths.output, Event(EventKind.REINSTALL, mac=by_name[name], node=name, source="cli"))
    typer.echo(f"{name} will install again on its next PXE boot (a running serve takes this within a second); "
               "if the cluster is up, run `bootstrap-node generate` first so its config carries a fresh join token")
