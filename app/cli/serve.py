"""`serve`: proxy DHCP + TFTP (dnsmasq) and the Matchbox-compatible HTTP API, in the foreground."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_ASSETS,
    DEFAULT_IMAGES,
    AssetsOpt,
    BindOpt,
    DhcpOpt,
    ImagesOpt,
    InstallWindowOpt,
    ListenOpt,
    Paths,
    TftpOpt,
    command,
    fail,
    listen_address,
    load_or_exit,
)
from app.exitcodes import ExitCode
from app.layout import MATCHBOX, TFTP
from app.logs import LogFormat
from app.serve.settings import (
    AppSettings,
    BootSettings,
    Dhcp,
    LeaseSettings,
    Limits,
    ServeSettings,
    Tftp,
    default_identity,
)


@command()
def serve(
    paths: Paths,
    listen: ListenOpt = None,
    dhcp: DhcpOpt = ServeSettings.dhcp,
    tftp: TftpOpt = ServeSettings.tftp,
    tftp_port: Annotated[int, typer.Option(help="Port of the built-in TFTP server.")] = ServeSettings.tftp_port,
    assets: AssetsOpt = DEFAULT_ASSETS,
    skip_preflight: Annotated[bool, typer.Option(
        help="Serve even when files the nodes fetch (Flatcar's, the sysexts) are missing from --assets: for "
             "development only, such nodes PXE-boot into 404s.")] = False,
    matchbox_data: Annotated[Path | None, typer.Option(help="Serve this Matchbox data dir instead.")] = None,
    matchbox_data_with_secrets: Annotated[bool, typer.Option(
        help="Serve a --matchbox-data tree even though it holds private keys or join tokens: Matchbox mode has "
             "no install windows, so anyone on the LAN can fetch them.")] = False,
    images: ImagesOpt = DEFAULT_IMAGES,
    install_window: InstallWindowOpt = BootSettings.window_seconds,
    bind: BindOpt = BootSettings.bind,
    idle_timeout: Annotated[float, typer.Option(
        help="Seconds a connection may wait for a complete request (idle keep-alive or slow headers); a "
             "request's body must arrive whole within as long again.")] = Limits.idle_seconds,
    max_connections: Annotated[int, typer.Option(
        help="Open connections at most (then the oldest idle one is closed).")] = Limits.max_connections,
    max_per_client: Annotated[int, typer.Option(
        help="Open connections one client address may hold (more are closed at once).")] = Limits.per_address,
    strict_matchbox: Annotated[bool, typer.Option(help="Plain 404s and no boot guard, exactly like Matchbox.")]
        = BootSettings.strict_matchbox,
    log_format: Annotated[LogFormat, typer.Option(help="text or json log lines.")] = ServeSettings.log_format,
    shutdown_timeout: Annotated[float, typer.Option(help="Seconds in-flight downloads get on stop.")]
        = ServeSettings.shutdown_timeout,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request (client, request, status, bytes, "
                                                  "seconds).")] = ServeSettings.access_log,
    workers: Annotated[int, typer.Option(min=1, max=64, help=(
        "HTTP worker processes on the port, sharing the install-window state (bench/README.md says what one "
        "worker answers)."))] = ServeSettings.workers,
    leader_elect: Annotated[bool, typer.Option(
        help="Run as one of several replicas: serve PXE and the boot API only while holding a Kubernetes Lease "
             "(docs/high-availability.md); a standby answers 503.")] = False,
    kubeconfig: Annotated[Path | None, typer.Option(
        help="Kubeconfig for --leader-elect and --from-cluster; without it, the in-cluster config of the pod it "
             "runs in (its ServiceAccount's files: under $BOOTSTRAP_NODE_SERVICE_ACCOUNT_DIR if set).")] = None,
    lease_namespace: Annotated[str | None, typer.Option(
        help="Namespace of the Lease; default the pod's own namespace in a pod, else default.")] = None,
    lease_name: Annotated[str, typer.Option(help="Name of the Lease.")] = LeaseSettings.name,
    identity: Annotated[str | None, typer.Option(
        help="This replica's name in the Lease; default HOSTNAME_PID.")] = None,
    lease_duration: Annotated[int, typer.Option(
        help="Seconds a standby waits, after it last saw the Lease change, before taking it over.")]
        = LeaseSettings.lease_duration,
    renew_deadline: Annotated[float, typer.Option(
        help="Seconds after its last renewal began when a leader stops serving (below --lease-duration).")]
        = LeaseSettings.renew_deadline,
    retry_period: Annotated[float, typer.Option(
        help="Seconds between a replica's looks at the Lease.")] = LeaseSettings.retry_period,
    service_address: Annotated[str | None, typer.Option(
        help="With --leader-elect: ADDR or ADDR/PREFIX the leader adds to --service-interface and announces with "
             "gratuitous ARP (normally bootstrap.ip, which the nodes use); removed when it stops leading.")] = None,
    service_interface: Annotated[str | None, typer.Option(help="Interface for --service-address.")] = None,
    from_cluster: Annotated[bool, typer.Option(
        help="Cluster mode: render --output (absent or empty at first) from the Machines, ProvisioningCluster and "
             "state in --cluster-namespace after `pivot`, and follow the Machines (docs/pivot.md).")] = False,
    cluster_namespace: Annotated[str | None, typer.Option(
        help="With --from-cluster: the namespace `pivot` used; default the pod's own in a pod, else "
             "bootstrap-node.")] = None,
) -> None:
    """Serve the generated tree: proxy DHCP + TFTP (dnsmasq) and the Matchbox-compatible HTTP API.

    Runs in the foreground until SIGINT/SIGTERM or `teardown`; exits 0 after a clean stop. Refuses to
    start (exit 1, nothing bound) when a file the nodes fetch is missing from --assets, as `init` does.
    """
    from app import logs
    from app.serve.errors import ServeError
    from app.serve.runner import serve_forever
    from app.serve.supervise.dnsmasq import DnsmasqFailed

    logs.setup(log_format)
    if from_cluster and listen is None:  # its default comes from a cluster.yaml file, which cluster mode has not
        raise fail("--from-cluster needs --listen ADDR:PORT (the pod's is 0.0.0.0:8080): in cluster mode "
                   "cluster.yaml is in the API, not a file, so bootstrap.ip:http_port cannot be read before the "
                   "first render")
    boot = BootSettings(strict_matchbox=strict_matchbox, window_seconds=install_window, bind=bind)
    limits = Limits(idle_seconds=idle_timeout, max_connections=max_connections, per_address=max_per_client)
    settings = serve_settings(paths, listen, dhcp, tftp, assets, boot, limits, matchbox_data=matchbox_data,
                              images=images, tftp_port=tftp_port, shutdown_timeout=shutdown_timeout,
                              access_log=access_log, workers=workers, log_format=log_format,
                              election=election_settings(leader_elect, kubeconfig, workers, identity=identity,
                                                         from_cluster=from_cluster,
                                                         namespace=lease_namespace, name=lease_name,
                                                         lease_duration=lease_duration, renew_deadline=renew_deadline,
                                                         retry_period=retry_period),
                              **service_settings(leader_elect, service_address, service_interface))
    beside = None
    if from_cluster:
        beside = from_cluster_task(settings, kubeconfig, cluster_namespace, assets, matchbox_data)
    if not settings.app.data_dir.is_dir():
        raise fail(f"{settings.app.data_dir} not found: run `bootstrap-node generate` first (or pass --matchbox-data)")
    if matchbox_data is not None and not matchbox_data_with_secrets:
        from app.cli.foreign_data import secret_in
        found = secret_in(settings.app.data_dir)
        if found:
            raise fail(f"refusing --matchbox-data {matchbox_data}: {found}. It would be served to anyone who asks, "
                       "with no install windows. Serve the appliance's own tree without --matchbox-data, or pass "
                       "--matchbox-data-with-secrets if that is really meant.")
    # Last of the checks, first of anything bound or started: a node booting now would fetch a 404.
    if matchbox_data is None and not skip_preflight:  # a foreign Matchbox tree has no cluster.yaml to check
        from app.cluster.preflight import refusal
        from app.pivot.unpivot import CLUSTER_YAML
        # --from-cluster: the cluster.yaml the first render exported from the API, not a file of the user's
        config = settings.output / CLUSTER_YAML if from_cluster else paths.config
        if message := refusal(load_or_exit(config), assets, "serve"):
            raise fail(message)
    try:
        asyncio.run(serve_forever(settings, beside))
    except (ServeError, DnsmasqFailed) as exc:
        raise fail(f"serve failed: {exc}", ExitCode.INVALID) from None


def election_settings(leader_elect: bool, kubeconfig: Path | None, workers: int, identity: str | None,
                      from_cluster: bool = False, **lease) -> LeaseSettings | None:
    """--leader-elect's settings, checked; None without it."""
    if not leader_elect:
        if kubeconfig is not None and not from_cluster:
            raise fail("--kubeconfig is for --leader-elect and --from-cluster: pass one of them, or no --kubeconfig")
        return None
    if workers > 1:
        raise fail("--leader-elect runs one HTTP worker (--workers 1): the standby gate is not shared with "
                   "worker processes yet")
    if kubeconfig is not None and not kubeconfig.is_file():
        raise fail(f"--kubeconfig {kubeconfig}: no such file")
    if lease.get("namespace") is None:
        lease["namespace"] = pod_namespace() if kubeconfig is None else LeaseSettings.namespace
    settings = LeaseSettings(identity=identity if identity is not None else default_identity(),
                             kubeconfig=kubeconfig.resolve() if kubeconfig else None, **lease)
    problems = settings.problems()
    if problems:
        raise fail("--leader-elect: " + "; ".join(problems))
    return settings


def from_cluster_task(settings: ServeSettings, kubeconfig: Path | None, namespace: str | None, assets: Path,
                      matchbox_data: Path | None):
    """--from-cluster: the first render (before anything is served: a cluster that makes no tree
    fails here), and the watch to run beside serve."""
    from app.cli.cluster_mode import hooks, owned, rebuilder, watched
    from app.cli.common import DEFAULT_IPXE_DIR
    from app.serve.cluster.cluster_mode import ClusterMode, RebuildFailed
    from app.serve.cluster.lease_api import connect
    from app.serve.cluster.machines_api import MachinesApi
    from app.serve.cluster.settings_watch import SettingsWatch
    from app.serve.cluster.window_store import MachineWindows
    from app.serve.errors import ServeError

    if matchbox_data is not None:
        raise fail("--from-cluster renders its own tree: it does not take --matchbox-data")
    if settings.workers > 1:
        raise fail("--from-cluster runs one HTTP worker (--workers 1): the install windows are written to the "
                   "Machines from the process that watches them")
    if kubeconfig is not None and not kubeconfig.is_file():
        raise fail(f"--kubeconfig {kubeconfig}: no such file")
    from app.serve.cluster import in_cluster
    in_pod = kubeconfig is None and in_cluster.namespace_file().is_file()
    namespace = namespace or (pod_namespace() if in_pod else "bootstrap-node")
    from app.cluster.machines import namespace_problem
    if problem := namespace_problem("--cluster-namespace", namespace):
        raise fail(problem)
    problem = owned(settings.output, namespace)
    if problem:
        raise fail(problem)
    try:
        api = connect(kubeconfig)
    except ServeError as exc:
        raise fail(str(exc)) from None
    rebuild = rebuilder(api, namespace, settings.output, assets, DEFAULT_IPXE_DIR)
    try:
        typer.echo(f"from namespace {namespace}: {rebuild()}", err=True)
    except RebuildFailed as exc:
        raise fail(f"--from-cluster: {exc}", ExitCode.INVALID) from None
    identity = settings.election.identity if settings.election is not None else "serve"

    settings_watch = SettingsWatch(api, namespace, watched(namespace))

    def beside(server):
        machines = MachinesApi(api, namespace)
        mode = ClusterMode(machines, hooks(server, rebuild, identity), beside=settings_watch.loops())
        # The install windows live in the Machines: what a takeover honours (docs/high-availability.md).
        server.services.windows = MachineWindows(lambda: mode.known, mode.learn, machines,
                                                 settings.app.boot.window_seconds)
        return mode.run()
    return beside


def pod_namespace() -> str:
    """The namespace of the pod this runs in (its ServiceAccount's), or `default` outside a pod: the
    Lease then lives next to the replicas, where their Role grants them leases."""
    from app.serve.cluster import in_cluster
    try:
        return in_cluster.namespace_file().read_text().strip() or LeaseSettings.namespace
    except OSError:
        return LeaseSettings.namespace


def service_settings(leader_elect: bool, address: str | None, interface: str | None) -> dict:
    """--service-address and --service-interface, checked, as ServeSettings fields."""
    if address is None and interface is None:
        return {}
    if not leader_elect:
        raise fail("--service-address is held by the leader of --leader-elect: pass --leader-elect too")
    if address is None or interface is None:
        raise fail("--service-address and --service-interface go together")
    from app.serve.cluster.address import parse
    try:
        value = parse(address)
    except ValueError as exc:
        raise fail(f"--service-address {exc}") from None
    if not Path(f"/sys/class/net/{interface}").exists():
        raise fail(f"--service-interface {interface}: no such interface on this host")
    return {"service_address": str(value), "service_interface": interface}


def serve_settings(paths: Paths, listen: str | None, dhcp: Dhcp, tftp: Tftp, assets: Path,
                   boot: BootSettings | None = None, limits: Limits | None = None, matchbox_data: Path | None = None,
                   images: Path = DEFAULT_IMAGES, **more) -> ServeSettings:
    """The settings tree from the command line: one function for `serve` and `init`."""
    host, port = listen_address(paths, listen)
    out = paths.output.resolve()
    if not assets.is_dir():
        typer.echo(f"warning: assets directory {assets} not found: /assets/ answers 404", err=True)
    # <output>/matchbox stays a path through the `current` link: a later generate switches what it serves.
    site = AppSettings(data_dir=matchbox_data.resolve() if matchbox_data else out / MATCHBOX,
                       assets=assets.resolve() if assets.is_dir() else None,
                       loaders=None if matchbox_data else out / TFTP,
                       images=images.resolve() if (images / "index.json").is_file() else None,
                       boot=dataclasses.replace(boot or BootSettings(), own_tree=matchbox_data is None),
                       limits=limits or Limits())
    return ServeSettings(output=out, app=site, host=host, port=port, dhcp=dhcp, tftp=tftp, **more)
