"""`show`: what a node will receive, as files, units and their contents, from the generated tree."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from app.cli.common import Paths, command, fail, known_nodes
from app.ignition.readable import describe
from app.layout import CREDENTIAL_PATH, OutputTree


class Stage(str, Enum):
    install = "install"
    final = "final"
    both = "both"


@command()
def show(
    paths: Paths,
    name: Annotated[str, typer.Argument(help="The node, as named in cluster.yaml.")],
    stage: Annotated[Stage, typer.Option(help="install: the config the PXE-booted system runs to install; final: "
                                              "the installed system's; both.")] = Stage.both,
) -> None:
    """Print what a node will receive: its install and final configs as files, units and contents.

    Read from the generated output (run `generate` first); files only the node may read (keys,
    tokens) are named, never printed.
    """
    names = sorted(known_nodes(paths.config).values())
    ignition = OutputTree(paths.output).matchbox / "ignition"
    if names and name not in names:
        raise fail(f"no node named {name!r} in {paths.config} (nodes: {', '.join(names)})")
    wanted = {"install": f"{name}-install.ign", "final": f"{name}.ign"}
    if stage is not Stage.both:
        wanted = {stage.value: wanted[stage.value]}
    for label, file in wanted.items():
        path = ignition / file
        try:
            config = json.loads(path.read_text())
        except FileNotFoundError:
            raise fail(f"{path} does not exist: run `bootstrap-node generate` first") from None
        except (OSError, ValueError) as exc:
            raise fail(f"{path}: cannot read it as an Ignition config: {exc}") from None
        typer.echo(f"=== {name}: {label} config ({path})")
        if label == "install":
            typer.echo(f"(serve adds one file when it answers: the node's one-install credential, {CREDENTIAL_PATH})")
        typer.echo(describe(config))
    _reported_disks(paths, name)


def _reported_disks(paths: Paths, name: str) -> None:
    """The disks the machine reported at its last install (from the event log, when serve has run)."""
    from app.events import EventLog
    from app.layout import EVENTS
    from app.logs import terminal_safe
    from app.status.text import disk_entry

    if not (paths.output / EVENTS).exists():
        return
    states = [s for s in EventLog(paths.output, known_nodes(paths.config)).snapshot() if s.name == name]
    disks = states[0].disks if states else []
    typer.echo(f"=== {name}: disks it reported")
    if not disks:
        typer.echo("(none yet: its install script reports them when it starts)")
    for disk in disks:
        typer.echo(terminal_safe(disk_entry(disk)))
