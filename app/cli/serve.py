"""Commands around a running appliance: serve, status, discover, reinstall, teardown."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from app.cli import EXIT_INVALID, app, load_or_exit
from app.events import Event, EventLog, append_event, read_events

EXIT_SERVE_FAILED = 1


class Dhcp(str, Enum):
    proxy = "proxy"
    none = "none"


class Tftp(str, Enum):
    dnsmasq = "dnsmasq"
    builtin = "builtin"
    none = "none"


class LogFormat(str, Enum):
    text = "text"
    json = "json"


OutputOpt = Annotated[Optional[Path], typer.Option("--output", help="Output directory (overrides the global option).")]


@app.command()
def serve(
    ctx: typer.Context,
    output: OutputOpt = None,
    listen: Annotated[Optional[str], typer.Option(help="ADDR:PORT; default bootstrap.ip:http_port.")] = None,
    dhcp: Annotated[Dhcp, typer.Option(help="proxy: answer PXE next to the site's DHCP; none: no DHCP.")] = Dhcp.proxy,
    tftp: Annotated[Tftp, typer.Option(help="Who serves iPXE over TFTP.")] = Tftp.dnsmasq,
    tftp_port: Annotated[int, typer.Option(help="Port of the built-in TFTP server.")] = 69,
    assets: Annotated[Path, typer.Option(envvar="BOOTSTRAP_ASSETS", help="Assets root served at /assets/.")]
        = Path("/assets"),
    matchbox_data: Annotated[Optional[Path], typer.Option(help="Serve this Matchbox data dir instead.")] = None,
    strict_matchbox: Annotated[bool, typer.Option(help="Plain 404s and no boot guard, exactly like Matchbox.")]
        = False,
    log_format: Annotated[LogFormat, typer.Option(help="text or json log lines.")] = LogFormat.text,
    shutdown_timeout: Annotated[float, typer.Option(help="Seconds in-flight downloads get on stop.")] = 10.0,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request (client, request, status, bytes, "
                                                  "seconds).")] = False,
) -> None:
    """Serve the generated tree: proxy DHCP + TFTP (dnsmasq) and the Matchbox-compatible HTTP API.

    Runs in the foreground until SIGINT/SIGTERM or `teardown`; exits 0 after a clean stop.
    """
    from app import logs
    from app.serve.dnsmasq import DnsmasqFailed
    from app.serve.runner import ServeError, ServeOptions, serve_forever

    logs.setup(log_format.value)
    out = (output or ctx.obj.output).resolve()
    host, port = _listen(ctx, listen)
    opts = ServeOptions(output=out, data_dir=(matchbox_data or out / "matchbox").resolve(),
                        assets=assets.resolve() if assets.is_dir() else None, host=host, port=port,
                        dhcp=dhcp.value, tftp=tftp.value, tftp_port=tftp_port, strict_matchbox=strict_matchbox,
                        shutdown_timeout=shutdown_timeout, access_log=access_log)
    if not opts.data_dir.is_dir():
        typer.echo(f"{opts.data_dir} not found: run `bootstrap-node generate` first (or pass --matchbox-data)",
                   err=True)
        raise typer.Exit(EXIT_INVALID)
    if opts.assets is None:
        typer.echo(f"warning: assets directory {assets} not found: /assets/ answers 404", err=True)
    try:
        asyncio.run(serve_forever(opts))
    except (ServeError, DnsmasqFailed) as exc:
        typer.echo(f"serve failed: {exc}", err=True)
        raise typer.Exit(EXIT_SERVE_FAILED)


def _listen(ctx: typer.Context, listen: str | None) -> tuple[str, int]:
    if listen:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            typer.echo(f"--listen {listen!r}: expected ADDR:PORT, like 10.0.0.2:8080 or 0.0.0.0:8080", err=True)
            raise typer.Exit(EXIT_INVALID)
        return host, int(port)
    cluster = load_or_exit(ctx.obj.config)
    return str(cluster.bootstrap.ip), cluster.bootstrap.http_port


@app.command()
def status(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Each node's phase from the event log (works while serve runs, and after)."""
    from rich.console import Console
    from rich.table import Table

    from app.serve.status_page import HEADERS, rows

    out = output or ctx.obj.output
    log = EventLog(out, _known(ctx))
    table = Table(*HEADERS, title=f"bootstrap-node: {out / 'events.jsonl'}")
    for row in rows(log.snapshot()):
        table.add_row(*row)
    Console().print(table)


def _known(ctx: typer.Context) -> dict[str, str]:
    """MAC -> name from cluster.yaml when it is readable (so pending nodes show too)."""
    try:
        from app.cluster import load_cluster
        cluster, _ = load_cluster(ctx.obj.config)
        return {n.mac: n.name for n in cluster.nodes}
    except Exception:  # noqa: BLE001 - status works from the log alone
        return {}


@app.command()
def discover(ctx: typer.Context, output: OutputOpt = None) -> None:
    """MACs that PXE-booted but are in no group, as a ready-to-paste `nodes:` snippet."""
    out = output or ctx.obj.output
    known = _known(ctx)
    seen: dict[str, str] = {}
    for event in read_events(out / "events.jsonl"):
        if event.kind == "discovered" and event.mac and event.mac not in known:
            seen.setdefault(event.mac, event.detail.get("ip", ""))
    if not seen:
        typer.echo("# no unknown machines have PXE-booted")
        return
    typer.echo("# machines that PXE-booted but are not in cluster.yaml; name them and pick roles and IPs:")
    typer.echo("nodes:")
    for i, mac in enumerate(seen, 1):
        typer.echo(f'  - {{name: node-{i}, role: worker, mac: "{mac}", ip: CHANGE_ME}}'
                   f"{f'  # seen from {seen[mac]}' if seen[mac] else ''}")


@app.command()
def reinstall(ctx: typer.Context, name: str, output: OutputOpt = None) -> None:
    """Let a node install again on its next PXE boot (clears the reinstall-loop guard)."""
    out = output or ctx.obj.output
    known = {n: m for m, n in _known(ctx).items()}
    if name not in known:
        typer.echo(f"no node named {name!r} in {ctx.obj.config}", err=True)
        raise typer.Exit(EXIT_INVALID)
    append_event(out, Event("reinstall", mac=known[name], node=name, source="cli"))
    typer.echo(f"{name} will install again on its next PXE boot (a running serve takes this within a second)")


@app.command()
def teardown(ctx: typer.Context, output: OutputOpt = None,
             timeout: Annotated[float, typer.Option(help="Seconds to wait for it to exit.")] = 30.0) -> None:
    """Stop a running serve/init of this output directory and wait for it to exit. Idempotent."""
    from app.serve.runner import STATE_FILE, read_state

    out = output or ctx.obj.output
    state = read_state(out)
    if not state:
        typer.echo(f"nothing running for {out}")
        return
    pid = int(state.get("pid", 0))
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        (out / STATE_FILE).unlink(missing_ok=True)
        typer.echo(f"serve (pid {pid}) was not running; removed its stale state file")
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            typer.echo(f"stopped serve (pid {pid})")
            return
        time.sleep(0.1)
    typer.echo(f"serve (pid {pid}) did not exit within {timeout:.0f}s", err=True)
    raise typer.Exit(1)


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
