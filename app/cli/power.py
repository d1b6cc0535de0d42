"""`power on|off|cycle|status [NAME...]`: the nodes' power through their BMCs (or Wake-on-LAN)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from app.cli.common import Paths, command, fail, load_or_exit
from app.exitcodes import ExitCode


class Action(str, Enum):
    on = "on"
    off = "off"
    cycle = "cycle"
    status = "status"


@command()
def power(
    paths: Paths,
    action: Annotated[Action, typer.Argument(help="on (network boot once, then on), off, cycle, or status.")],
    names: Annotated[list[str] | None, typer.Argument(help="Nodes to act on; default: all.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each node to reach the state asked for.")]
        = 120.0,
) -> None:
    """Power nodes on, off or through a cycle, or show their power state and boot override.

    Exit 0 when every node did what was asked, 1 when any did not (each failure names the node,
    the BMC and what it answered).
    """
    from app.power import PowerError, cycle, start, wait_for, way_for

    cluster = load_or_exit(paths.config)
    by_name = {n.name: n for n in cluster.nodes}
    if unknown := [n for n in names or [] if n not in by_name]:
        raise fail(f"no node named {', '.join(unknown)} in {paths.config} (nodes: {', '.join(by_name)})")
    ways = {name: way_for(cluster, by_name[name]) for name in names or by_name}
    failed = False
    if action is Action.status:
        for name, way in ways.items():
            try:
                state = way.status()
                typer.echo(f"{name:<16} {way.name:<8} power {state.power:<8} boot override {state.boot}")
            except PowerError as exc:
                failed = _said(exc)
        raise typer.Exit(ExitCode.INVALID if failed else ExitCode.OK)
    acted = {}
    for name, way in ways.items():
        try:
            if action is Action.off:
                way.off()
                typer.echo(f"{name}: powering off")
            else:
                typer.echo(f"{name}: {start(way) if action is Action.on else cycle(way, timeout)}")
            acted[name] = way
        except PowerError as exc:
            failed = _said(exc)
    want = "off" if action is Action.off else "on"
    watchable = {name: way for name, way in acted.items() if way.status_known}
    for name, result in wait_for(watchable, want, timeout).items():
        if isinstance(result, PowerError):
            failed = _said(result)
        else:
            typer.echo(f"{name}: {result.power}")
    raise typer.Exit(ExitCode.INVALID if failed else ExitCode.OK)


def _said(exc: Exception) -> bool:
    typer.echo(f"error: {exc}", err=True)
    return True
