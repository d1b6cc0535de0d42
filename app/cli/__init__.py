"""The command line: one module per command (or small group), each a thin layer that parses options,
calls plain functions and maps outcomes to exit codes. `common` holds the Typer app and what every
command shares; importing the command modules registers them.
"""

from __future__ import annotations

from app.cli import (  # noqa: F401
    assets,
    generate,
    images,
    init,
    nodes,
    pivot,
    power,
    serve,
    show,
    teardown,
    validate,
    wait,
)
from app.cli.common import app


def main() -> None:
    app(prog_name="bootstrap-node")


__all__ = ["app", "main"]
