"""`init`: everything, from cluster.yaml to a kubeconfig, in one process."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_ASSETS,
    DEFAULT_IPXE_DIR,
    AssetsOpt,
    BindOpt,
    DhcpOpt,
    IpxeDirOpt,
    ListenOpt,
    Paths,
    TftpOpt,
    command,
    fail,
    load_or_exit,
)
from app.cli.generate import generate_or_exit
from app.cli.progress import Progress
from app.cli.serve import serve_settings
from app.cli.wait import ApiTimeout, NodesTimeout, Poll, Server, WaitGitops, finish, wait_options
from app.cluster.preflight import refusal
from app.layout import EVENTS
from app.serve.settings import BootSettings, ServeSettings
from app.wait import API_TIMEOUT, NODES_TIMEOUT, POLL


@command()
def init(
    paths: Paths,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before powering on (power: manual).")] = False,
    listen: ListenOpt = None,
    dhcp: DhcpOpt = ServeSettings.dhcp,
    tftp: TftpOpt = ServeSettings.tftp,
    bind: BindOpt = BootSettings.bind,
    assets: AssetsOpt = DEFAULT_ASSETS,
    ipxe_dir: IpxeDirOpt = DEFAULT_IPXE_DIR,
    api_timeout: ApiTimeout = API_TIMEOUT,
    nodes_timeout: NodesTimeout = NODES_TIMEOUT,
    poll: Poll = POLL,
    server: Server = None,
    wait_gitops: WaitGitops = False,
) -> None:
    """Everything: validate, generate, serve, power on, wait, write the kubeconfig, stop.

    Exits with wait's code (0 healthy, 3, 4, 5, 130); 1 when the config or serving fails.
    """
    from app import init as orchestrate
    from app import logs
    from app.power import power_on
    from app.power.watch import LogTail, watch_installs

    cluster = load_or_exit(paths.config)
    if message := refusal(cluster, assets, "init"):
        raise fail(message)
    rendered = generate_or_exit(cluster, paths, assets=assets, ipxe_dir=ipxe_dir, api_servers=server)
    logs.setup("text")
    tail = LogTail(paths.output / EVENTS)  # from here: an `installed` from before this init is old news
    plan = orchestrate.InitPlan(
        cluster, serve_settings(paths, listen, dhcp, tftp, assets, BootSettings(bind=bind)),
        wait_options(cluster, paths.templates, api_timeout=api_timeout, nodes_timeout=nodes_timeout, poll=poll,
                     server=server, wait_gitops=wait_gitops),
        lambda: power_on(cluster, ask=lambda names: _ask(names, yes), say=typer.echo), Progress(),
        watch_installs=lambda stop: watch_installs(cluster, paths.output / EVENTS, stop, typer.echo, tail=tail))
    with plan.report:
        outcome = orchestrate.run(plan)
    if outcome.cluster_recorded and not rendered.cluster_exists:
        # The first controller's stored config still says `kubeadm init`: re-render now that the cluster
        # exists, so a later reinstall of that machine joins it instead of starting a second cluster.
        generate_or_exit(cluster, paths, assets=assets, ipxe_dir=ipxe_dir, api_servers=server)
        typer.echo(f"the cluster exists: {cluster.bootstrap_node.name}'s config now joins it (no second kubeadm init)")
    finish(outcome)


def _ask(names: list[str], yes: bool) -> None:
    typer.echo(f"Power on your nodes now ({', '.join(names)}); they PXE-boot from this appliance.")
    if not yes and sys.stdin.isatty():
        input("Press Enter once they are powering on... ")
