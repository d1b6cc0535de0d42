"""Commands that end with a working cluster: wait (the health gate) and init (everything)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from app.cli import app, load_or_exit
from app.wait.gate import EXIT_INTERRUPTED, Outcome, WaitOptions, wait_for_cluster

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


def wait_options(cluster, api_timeout: float, nodes_timeout: float, poll: float, server: list[str] | None,
                 templates: Path | None, wait_gitops: bool = False) -> WaitOptions:
    from app.wait.addons import make_plan
    from app.render.templates import BUILTIN
    return WaitOptions(api_timeout=api_timeout, nodes_timeout=nodes_timeout, poll=poll, servers=server or [],
                       plan=make_plan(cluster, templates, BUILTIN, wait_gitops))


def finish(outcome: Outcome) -> None:
    typer.echo(outcome.message, err=outcome.code != 0)
    raise typer.Exit(outcome.code)


ApiTimeout = Annotated[float, typer.Option(help="Seconds for the API server to answer /readyz.")]
NodesTimeout = Annotated[float, typer.Option(help="Seconds, once the API answers, for every node to be Ready.")]
Poll = Annotated[float, typer.Option(help="Seconds between checks.")]
Server = Annotated[Optional[list[str]], typer.Option(help="API endpoint(s) to try instead of the VIP, "
                                                         "api_server_name and controllers (https://host:port).")]
WaitGitops = Annotated[bool, typer.Option(help="With gitops: also wait until the root Application is Synced.")]


@app.command("wait")
def wait_command(
    ctx: typer.Context,
    api_timeout: ApiTimeout = 1800.0,
    nodes_timeout: NodesTimeout = 900.0,
    poll: Poll = 5.0,
    server: Server = None,
    wait_gitops: WaitGitops = False,
) -> None:
    """Wait until the cluster is healthy, apply the add-ons, then write <output>/kubeconfig.

    Exit 0 healthy, 3 the API never answered, 4 nodes not Ready in time, 5 add-ons failed,
    130 interrupted.
    """
    cluster = load_or_exit(ctx.obj.config)
    opts = wait_options(cluster, api_timeout, nodes_timeout, poll, server, ctx.obj.templates, wait_gitops)
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


@app.command()
def init(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before powering on (power: manual).")] = False,
    listen: Annotated[Optional[str], typer.Option(help="ADDR:PORT for the HTTP server; default from cluster.yaml.")]
        = None,
    dhcp: Annotated[str, typer.Option(help="proxy or none (see serve).")] = "proxy",
    tftp: Annotated[str, typer.Option(help="dnsmasq, builtin or none (see serve).")] = "dnsmasq",
    assets: Annotated[Path, typer.Option(envvar="BOOTSTRAP_ASSETS", help="Baked assets.")] = Path("/assets"),
    ipxe_dir: Annotated[Path, typer.Option(envvar="BOOTSTRAP_IPXE_DIR", help="iPXE binaries.")]
        = Path("/usr/lib/ipxe"),
    api_timeout: ApiTimeout = 1800.0,
    nodes_timeout: NodesTimeout = 900.0,
    poll: Poll = 5.0,
    server: Server = None,
    wait_gitops: WaitGitops = False,
) -> None:
    """Everything: validate, generate, serve, power on, wait, write the kubeconfig, stop.

    Exits with wait's code (0 healthy, 3, 4, 5, 130); 1 when the config or serving fails.
    """
    import asyncio

    from app import logs
    from app.cli.serve import _listen
    from app.generate import generate
    from app.init import InitPlan, run_init
    from app.atomic import OutputError
    from app.render.tree import RenderError
    from app.serve.runner import ServeError, ServeOptions

    paths = ctx.obj
    cluster = load_or_exit(paths.config)
    out = paths.output.resolve()
    try:
        result = generate(cluster, out, paths.templates, assets=assets, ipxe_dir=ipxe_dir)
    except (RenderError, OutputError) as exc:
        typer.echo(f"generate failed, {out} left unchanged:\n{exc}", err=True)
        raise typer.Exit(1)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    logs.setup("text")
    host, port = _listen(ctx, listen)
    serve_opts = ServeOptions(output=out, data_dir=out / "matchbox", assets=assets.resolve() if assets.is_dir() else None,
                              host=host, port=port, dhcp=dhcp, tftp=tftp)
    plan = InitPlan(cluster, serve_opts, wait_options(cluster, api_timeout, nodes_timeout, poll, server,
                                                      paths.templates, wait_gitops),
                    lambda: _power_on(cluster, yes), Progress())
    try:
        with plan.report:
            outcome = asyncio.run(run_init(plan))
    except ServeError as exc:
        outcome = Outcome(1, f"serve failed: {exc}")
    finish(outcome)


def _power_on(cluster, yes: bool) -> None:
    from app.power.wol import wake

    if cluster.power == "wol":
        wake([n.mac for n in cluster.nodes], str(cluster.bootstrap.ip),
             str(cluster.network.cidr.broadcast_address))
        typer.echo(f"sent Wake-on-LAN to {len(cluster.nodes)} nodes")
        return
    typer.echo(f"Power on your nodes now ({', '.join(n.name for n in cluster.nodes)}); "
               "they PXE-boot from this appliance.")
    if not yes and sys.stdin.isatty():
        input("Press Enter once they are powering on... ")
