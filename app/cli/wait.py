"""`wait`: the health gate, from the command line."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import Paths, command, load_or_exit
from app.cli.progress import Progress
from app.exitcodes import ExitCode
from app.wait import API_TIMEOUT, NODES_TIMEOUT, POLL

ApiTimeout = Annotated[float, typer.Option(help="Seconds for the API server to answer /readyz.")]
NodesTimeout = Annotated[float, typer.Option(help="Seconds, once the API answers, for every node to be Ready.")]
Poll = Annotated[float, typer.Option(help="Seconds between checks.")]
Server = Annotated[list[str] | None, typer.Option(help="API endpoint(s) to try instead of the VIP, "
                                                         "api_server_name and controllers (https://host:port).")]
WaitGitops = Annotated[bool, typer.Option(help="With gitops: also wait until the root Application is Synced.")]


def wait_options(cluster, templates: Path | None, *, api_timeout: float, nodes_timeout: float, poll: float,
                 server: list[str] | None, wait_gitops: bool):
    from app.render.templates import builtin_templates
    from app.wait.addons import make_plan
    from app.wait.gate import WaitOptions
    return WaitOptions(api_timeout=api_timeout, nodes_timeout=nodes_timeout, poll=poll, servers=server or [],
                       plan=make_plan(cluster, templates, builtin_templates(), wait_gitops))


# wait cannot re-render (it has no --assets/--ipxe-dir): it says what to run.
REGENERATE = ("the cluster exists now: run `bootstrap-node generate` once more, so the first controller's "
              "config joins it if that machine is ever reinstalled (instead of starting a second cluster)")


def finish(outcome) -> None:
    typer.echo(outcome.message, err=outcome.code != 0)
    raise typer.Exit(outcome.code)


@command("wait")
def wait_command(
    paths: Paths,
    api_timeout: ApiTimeout = API_TIMEOUT,
    nodes_timeout: NodesTimeout = NODES_TIMEOUT,
    poll: Poll = POLL,
    server: Server = None,
    wait_gitops: WaitGitops = False,
) -> None:
    """Wait until the cluster is healthy, apply the add-ons, then write <output>/kubeconfig.

    Exit 0 healthy, 3 the API never answered, 4 nodes not Ready in time, 5 add-ons failed,
    130 interrupted.
    """
    from app.wait.gate import Outcome, wait_for_cluster

    cluster = load_or_exit(paths.config)
    opts = wait_options(cluster, paths.templates, api_timeout=api_timeout, nodes_timeout=nodes_timeout, poll=poll,
                        server=server, wait_gitops=wait_gitops)
    stop = threading.Event()
    try:
        with Progress() as progress:
            outcome = _in_thread(lambda: wait_for_cluster(cluster, paths.output, opts, stop, progress), stop)
    except KeyboardInterrupt:
        outcome = Outcome(ExitCode.INTERRUPTED, "interrupted")
    if outcome.cluster_recorded:
        typer.echo(REGENERATE, err=True)
    finish(outcome)


INTERRUPT_GRACE = 5.0  # seconds Ctrl-C waits for the step in flight


def _in_thread(fn, stop: threading.Event):
    """Run `fn` in a thread so Ctrl-C reaches us at once; on Ctrl-C, tell it to stop and wait."""
    from app.wait.gate import Outcome

    result: list = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        stop.set()
        # The step in flight may be one API request with its own timeout (up to 20 s): give it a moment
        # to stop cleanly, then leave it (a daemon thread; every file it writes is written atomically).
        worker.join(INTERRUPT_GRACE)
        return Outcome(ExitCode.INTERRUPTED, "interrupted")
    return result[0]
