"""`serve`: proxy DHCP + TFTP (dnsmasq) and the Matchbox-compatible HTTP API, in the foreground."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_ASSETS,
    DEFAULT_IMAGES,
    AssetsOpt,
    Bind,
    BindOpt,
    Dhcp,
    DhcpOpt,
    ImagesOpt,
    InstallWindowOpt,
    ListenOpt,
    LogFormat,
    Paths,
    Tftp,
    TftpOpt,
    command,
    fail,
    listen_address,
)
from app.exitcodes import ExitCode
from app.layout import MATCHBOX


@command()
def serve(
    paths: Paths,
    listen: ListenOpt = None,
    dhcp: DhcpOpt = Dhcp.proxy,
    tftp: TftpOpt = Tftp.dnsmasq,
    tftp_port: Annotated[int, typer.Option(help="Port of the built-in TFTP server.")] = 69,
    assets: AssetsOpt = DEFAULT_ASSETS,
    matchbox_data: Annotated[Path | None, typer.Option(help="Serve this Matchbox data dir instead.")] = None,
    images: ImagesOpt = DEFAULT_IMAGES,
    install_window: InstallWindowOpt = 3600.0,
    bind: BindOpt = Bind.link,
    idle_timeout: Annotated[float, typer.Option(
        help="Seconds a connection may wait for a complete request (idle keep-alive or slow headers).")] = 15.0,
    max_connections: Annotated[int, typer.Option(
        help="Open connections at most (then the oldest idle one is closed).")] = 4096,
    max_per_client: Annotated[int, typer.Option(
        help="Open connections one client address may hold (more are closed at once).")] = 64,
    strict_matchbox: Annotated[bool, typer.Option(help="Plain 404s and no boot guard, exactly like Matchbox.")]
        = False,
    log_format: Annotated[LogFormat, typer.Option(help="text or json log lines.")] = LogFormat.text,
    shutdown_timeout: Annotated[float, typer.Option(help="Seconds in-flight downloads get on stop.")] = 10.0,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request (client, request, status, bytes, "
                                                  "seconds).")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help=(
        "HTTP worker processes on the port, sharing the install-window state; one answered about 1,600-1,900 boot "
        "requests a second on one core of the benchmark machine (README: Performance).")
    )] = 1,
) -> None:
    """Serve the generated tree: proxy DHCP + TFTP (dnsmasq) and the Matchbox-compatible HTTP API.

    Runs in the foreground until SIGINT/SIGTERM or `teardown`; exits 0 after a clean stop.
    """
    from app import logs
    from app.serve.errors import ServeError
    from app.serve.runner import serve_forever
    from app.serve.supervise.dnsmasq import DnsmasqFailed

    logs.setup(log_format.value)
    opts = serve_options(paths, listen, dhcp, tftp, assets, tftp_port=tftp_port, matchbox_data=matchbox_data,
                         strict_matchbox=strict_matchbox, shutdown_timeout=shutdown_timeout, access_log=access_log,
                         images=images, install_window=install_window, bind=bind.value,
                         idle_timeout=idle_timeout, max_connections=max_connections,
                         max_per_client=max_per_client, workers=workers, log_format=log_format.value)
    if not opts.data_dir.is_dir():
        raise fail(f"{opts.data_dir} not found: run `bootstrap-node generate` first (or pass --matchbox-data)")
    try:
        asyncio.run(serve_forever(opts))
    except (ServeError, DnsmasqFailed) as exc:
        raise fail(f"serve failed: {exc}", ExitCode.INVALID) from None


def serve_options(paths: Paths, listen: str | None, dhcp: Dhcp, tftp: Tftp, assets: Path,
                  matchbox_data: Path | None = None, images: Path = DEFAULT_IMAGES, **more):
    """ServeOptions from the command line: one function for `serve` and `init`."""
    from app.serve.runner import ServeOptions

    host, port = listen_address(paths, listen)
    out = paths.output.resolve()
    if not assets.is_dir():
        typer.echo(f"warning: assets directory {assets} not found: /assets/ answers 404", err=True)
    # <output>/matchbox stays a path through the `current` link: a later generate switches what it serves.
    return ServeOptions(output=out, data_dir=matchbox_data.resolve() if matchbox_data else out / MATCHBOX,
                        assets=assets.resolve() if assets.is_dir() else None, host=host, port=port,
                        dhcp=dhcp.value, tftp=tftp.value, foreign_data=matchbox_data is not None,
                        images=images.resolve() if (images / "index.json").is_file() else None, **more)
