"""`init`: everything, from cluster.yaml to a kubeconfig, in one process."""

from __future__ import annotations

import shlex
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
from app.cli.pivot import (
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    DEFAULT_SELECTOR,
    PivotOptions,
    rendered,
    send,
    statuses,
)
from app.cli.progress import Progress
from app.cli.serve import serve_settings
from app.cli.wait import ApiTimeout, NodesTimeout, Poll, Server, WaitGitops, finish, wait_options
from app.cluster.preflight import refusal
from app.exitcodes import ExitCode
from app.layout import EVENTS, KUBECONFIG
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
    pivot: Annotated[bool, typer.Option("--pivot", help="Once the cluster is healthy, run `pivot` with the "
                                                         "kubeconfig init wrote (docs/pivot.md).")] = False,
    pivot_image: Annotated[str, typer.Option(help="With --pivot: pivot's --image.")] = DEFAULT_IMAGE,
    pivot_namespace: Annotated[str, typer.Option(help="With --pivot: pivot's --namespace.")] = DEFAULT_NAMESPACE,
    pivot_node_selector: Annotated[str, typer.Option(help="With --pivot: pivot's --node-selector.")]
    = DEFAULT_SELECTOR,
) -> None:
    """Everything: validate, generate, serve, power on, wait, write the kubeconfig, stop; with
    --pivot, then move provisioning into the cluster.

    Exits with wait's code (0 healthy, 3, 4, 5, 130); 1 when the config or serving fails; 7 when the
    cluster is healthy but --pivot failed.
    """
    from app import init as orchestrate
    from app import logs
    from app.power import power_on
    from app.power.watch import LogTail, watch_installs

    cluster = load_or_exit(paths.config)
    options = PivotOptions(pivot_image, pivot_namespace, pivot_node_selector)
    if not pivot and options != PivotOptions():
        raise fail("--pivot-image, --pivot-namespace and --pivot-node-selector need --pivot")
    if pivot:
        options.check(cluster)  # a bad option is refused before any machine is touched
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
    if pivot and outcome.code == ExitCode.OK:
        typer.echo(outcome.message)
        _pivot_after(cluster, paths, options, outcome.server)
        return
    finish(outcome)


def _pivot_after(cluster, paths: Paths, options: PivotOptions, server: str) -> None:
    """pivot with the kubeconfig wait wrote, through the endpoint wait reached (the kubeconfig's own,
    the API name, may not resolve where init runs); a failure says the cluster is fine and how to
    pivot again."""
    kubeconfig = paths.output / KUBECONFIG
    try:
        objects = rendered(cluster, paths, options)
        machines = send(objects, kubeconfig, options, server=server, started=statuses(cluster, paths, objects))
    except typer.Exit as exc:
        if not exc.exit_code:
            raise
        again = shlex.join(["bootstrap-node", "--config", str(paths.config), "--output", str(paths.output),
                            "--templates", str(paths.templates), "pivot",
                            "--kubeconfig", str(kubeconfig), "--image", options.image,
                            "--namespace", options.namespace, "--node-selector", options.node_selector,
                            *(["--server", server] if server else [])])
        raise fail(f"the cluster is up and healthy ({kubeconfig} is written), but pivot failed (exit "
                   f"{exc.exit_code}, above). Nothing needs to be done again but the pivot: {again}",
                   ExitCode.PIVOT) from None
    typer.echo(f"pivoted: {machines} machines in namespace {options.namespace}")


def _ask(names: list[str], yes: bool) -> None:
    typer.echo(f"Power on your nodes now ({', '.join(names)}); they PXE-boot from this appliance.")
    if not yes and sys.stdin.isatty():
        input("Press Enter once they are powering on... ")
