"""The command line: parse options, call plain functions, map outcomes to exit codes. No logic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from app import __version__
from app.cluster import InvalidConfig, Problem, SourceError, load_cluster, load_source, render
from app.cluster.checks import check
from app.cluster.model import Cluster
from app.yaml_source import Pos

app = typer.Typer(
    help="Turn a rack of powered-off bare-metal machines into a Kubernetes cluster on Flatcar.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


@dataclass
class Paths:
    config: Path
    output: Path
    templates: Path


class Format(str, Enum):
    text = "text"
    json = "json"
    github = "github"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bootstrap-node {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(envvar="BOOTSTRAP_CONFIG", help="cluster.yaml to read.")]
        = Path("/config/cluster.yaml"),
    output: Annotated[Path, typer.Option(envvar="BOOTSTRAP_OUTPUT", help="Output directory.")]
        = Path("/output"),
    templates: Annotated[Path, typer.Option(envvar="BOOTSTRAP_TEMPLATES",
                                            help="Template overrides; missing files fall back to built-ins.")]
        = Path("/templates"),
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    ctx.obj = Paths(config, output, templates)


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="cluster.yaml (overrides the global option).")]


@app.command()
def validate(
    ctx: typer.Context,
    config: ConfigOpt = None,
    fmt: Annotated[Format, typer.Option("--format", help="text, json, or github annotations.")] = Format.text,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
    online: Annotated[bool, typer.Option(help="Also check DNS for cluster.api_server_name.")] = False,
    nameserver: Annotated[Optional[str], typer.Option(
        help="With --online: DNS server HOST[:PORT] to ask instead of the system's.")] = None,
) -> None:
    """Check cluster.yaml and report every problem with file, line and column.

    Exit 0 when valid, 1 when invalid, 2 when the file cannot be read as YAML.
    """
    path = config or ctx.obj.config
    try:
        source = load_source(path)
    except SourceError as exc:
        typer.echo(_unreadable(path, exc, fmt), err=fmt is Format.text)
        raise typer.Exit(EXIT_UNREADABLE)
    cluster, problems = check(source, str(path))
    if cluster is not None and online:
        from app.cluster.online import check_online
        problems += check_online(cluster, source, str(path), nameserver)
    failed = any(p.severity == "error" or strict for p in problems)
    if fmt is Format.text:
        if problems:
            typer.echo(render(problems, "text"))
        if not failed:
            typer.echo(f"{path}: valid ({_summary(cluster)})")
    else:
        typer.echo(render(problems, fmt.value))
    raise typer.Exit(EXIT_INVALID if failed else EXIT_OK)


@app.command()
def generate(
    ctx: typer.Context,
    config: ConfigOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", help="Output directory.")] = None,
    templates: Annotated[Optional[Path], typer.Option("--templates", help="Template overrides.")] = None,
    assets: Annotated[Path, typer.Option(envvar="BOOTSTRAP_ASSETS", help="Baked assets (sysext hashes).")]
        = Path("/assets"),
    ipxe_dir: Annotated[Path, typer.Option(envvar="BOOTSTRAP_IPXE_DIR", help="Where the iPXE binaries are.")]
        = Path("/usr/lib/ipxe"),
    ignition_schemas: Annotated[Optional[Path], typer.Option(
        envvar="BOOTSTRAP_IGNITION_SCHEMAS", help="Directory of official Ignition JSON Schemas to check against.")]
        = None,
    rotate_secrets: Annotated[bool, typer.Option(
        help="Replace the CA, keys and tokens. Installed nodes will no longer trust the cluster.")] = False,
) -> None:
    """Render the output tree: Matchbox data, Ignition per node, PKI, dnsmasq.conf, TFTP files.

    Atomic and idempotent: a failure leaves the previous output untouched; the same inputs give
    the same bytes. Secrets are created once and reused.
    """
    from app.generate import generate as run_generate
    from app.atomic import OutputError
    from app.render.tree import RenderError

    paths = ctx.obj
    cluster = load_or_exit(config or paths.config)
    out = output or paths.output
    try:
        result = run_generate(cluster, out, templates or paths.templates, assets=assets, ipxe_dir=ipxe_dir,
                              ignition_schemas=ignition_schemas, rotate_secrets=rotate_secrets)
    except (RenderError, OutputError) as exc:
        typer.echo(f"generate failed, {out} left unchanged:\n{exc}", err=True)
        raise typer.Exit(EXIT_INVALID)
    except OSError as exc:
        typer.echo(f"generate failed: {exc}", err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    s = result.summary
    if result.secrets_created:
        typer.echo(f"created new secrets in {out / 'credentials'} (CA, service-account key, token)")
    typer.echo(f"{out}: {len(s.written)} written, {len(s.unchanged)} unchanged, {len(s.removed)} removed "
               f"({len(cluster.nodes)} nodes)")


def _unreadable(path: Path, exc: SourceError, fmt: Format = Format.text) -> str:
    if fmt is Format.text:
        where = f"{path}:{exc.pos.line}:{exc.pos.column}" if exc.pos else str(path)
        return f"{where}: {exc.message}"
    pos = exc.pos or Pos(1, 1)
    return render([Problem(str(path), pos.line, pos.column, "", exc.message)], fmt.value)


def _summary(cluster: Cluster) -> str:
    return (f"cluster {cluster.cluster.name}: {len(cluster.controllers)} controller(s), "
            f"{len(cluster.workers)} worker(s), Kubernetes {cluster.cluster.k8s_version} "
            f"on Flatcar {cluster.cluster.flatcar_version}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of cluster.yaml (for editors: yaml-language-server, VS Code)."""
    typer.echo(json.dumps(cluster_schema(), indent=2))


def cluster_schema() -> dict:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **Cluster.model_json_schema()}


def load_or_exit(path: Path) -> Cluster:
    """For commands that need a valid config: print problems like `validate` and exit 1 or 2."""
    try:
        cluster, warnings = load_cluster(path)
    except SourceError as exc:
        typer.echo(_unreadable(path, exc), err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    except InvalidConfig as exc:
        typer.echo(render(exc.problems, "text"), err=True)
        raise typer.Exit(EXIT_INVALID)
    for w in warnings:
        typer.echo(w.text(), err=True)
    return cluster


def main() -> None:
    app(prog_name="bootstrap-node")


# Commands around a running appliance live in their own module; importing it registers them.
from app.cli import cluster as _cluster_commands, serve as _serve_commands  # noqa: E402,F401
