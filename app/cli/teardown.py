"""`teardown`: stop a running serve/init of this output directory."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import Paths, command, fail
from app.status.serving import Stopped, stop_recorded


@command()
def teardown(paths: Paths,
             timeout: Annotated[float, typer.Option(help="Seconds to wait for it to exit.")] = 30.0) -> None:
    """Stop a running serve/init of this output directory and wait for it to exit. Idempotent.

    Only the exact process recorded in serve.json is signalled (same boot, same start time), never
    whatever process has that pid now.
    """
    outcome, state = stop_recorded(paths.output, timeout)
    if outcome is Stopped.NOTHING:
        typer.echo(f"nothing running for {paths.output}")
    elif outcome is Stopped.TIMEOUT:
        raise fail(f"serve (pid {state.serve.pid}) did not exit within {timeout:.0f}s")
    elif outcome is Stopped.STALE:
        typer.echo(f"serve (pid {state.serve.pid}) was not running; removed its stale state file")
    else:
        typer.echo(f"stopped serve (pid {state.serve.pid})")
