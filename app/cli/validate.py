"""`validate` and `schema`: check cluster.yaml; print its JSON Schema."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import DEFAULT_ASSETS, DEFAULT_IMAGES, Format, ImagesOpt, Paths, command, unreadable
from app.cluster import Problem, SourceError, check, load_source, render
from app.cluster.model import Cluster
from app.cluster.problems import Found
from app.cluster.releases import flatcar_asset_problems
from app.cluster.schema import cluster_schema, reference_table
from app.cluster.sysexts import asset_checks
from app.exitcodes import ExitCode


@command()
def validate(
    paths: Paths,
    fmt: Annotated[Format, typer.Option("--format", help="text, json, or github annotations.")] = Format.text,
    strict: Annotated[bool, typer.Option(help="Treat warnings as errors.")] = False,
    online: Annotated[bool, typer.Option(help="Also check DNS for cluster.api_server_name and log in to "
                                              "each node's BMC.")] = False,
    nameserver: Annotated[str | None, typer.Option(
        help="With --online: DNS server HOST[:PORT] to ask instead of the system's.")] = None,
    images: ImagesOpt = DEFAULT_IMAGES,
    assets: Annotated[Path | None, typer.Option(
        envvar="BOOTSTRAP_ASSETS", help="Baked assets: check the sysexts the nodes will fetch are there "
                                        f"(default {DEFAULT_ASSETS}, when it exists).")] = None,
) -> None:
    """Check cluster.yaml and report every problem with file, line and column.

    Exit 0 when valid, 1 when invalid, 2 when the file cannot be read as YAML.
    """
    path = paths.config
    try:
        source = load_source(path)
    except SourceError as exc:
        typer.echo(unreadable(path, exc, fmt), err=fmt is Format.text)
        raise typer.Exit(ExitCode.UNREADABLE) from None
    cluster, problems = check(source, str(path))
    found: list[str] = []
    if cluster is not None and online:
        from app.cluster.online import check_bmcs, check_online
        from app.power import probe
        problems += check_online(cluster, source, str(path), nameserver)
        bmc_problems, found = check_bmcs(cluster, source, str(path), lambda node: probe(cluster, node))
        problems += bmc_problems
    if cluster is not None:
        problems += images_problem(cluster, paths, images, source)
        problems += assets_problems(cluster, assets, source, str(path))
    failed = any(p.severity == "error" or strict for p in problems)
    if fmt is Format.text:
        for line in found:
            typer.echo(line)
        if problems:
            typer.echo(render(problems, "text"))
        if not failed:
            typer.echo(f"{path}: valid ({summary(cluster)})")
    else:
        typer.echo(render(problems, fmt.value))
    raise typer.Exit(ExitCode.INVALID if failed else ExitCode.OK)


def images_problem(cluster: Cluster, paths: Paths, layout, source) -> list[Problem]:
    """A warning at k8s_version when the image layout exists but lacks what this cluster needs."""
    from app.cli.images import layout_warning

    message = layout_warning(cluster, paths.templates, layout)
    if message is None:
        return []
    pos = source.pos(("cluster", "k8s_version"))
    return [Problem(str(paths.config), pos.line, pos.column, "cluster.k8s_version", message, "warning")]


def assets_problems(cluster: Cluster, assets: Path | None, source, file: str) -> list[Problem]:
    """The sysexts (Kubernetes' and `sysexts:`) and the Flatcar release (PXE files, disk image and its
    signature) must be in the assets the nodes fetch from. Without
    --assets and without /assets (a workstation) there is nothing to check against: said only when
    cluster.yaml asks for more than the baked Kubernetes one."""
    found = Found(source, file)
    directory = assets or DEFAULT_ASSETS
    if not directory.is_dir():
        if assets is not None:
            found.add((), f"assets directory {assets} not found (--assets)")
        elif cluster.sysexts:
            found.warn(("sysexts",), f"not checked: no assets directory {DEFAULT_ASSETS} here (pass --assets DIR)")
        return found.items
    asset_checks(cluster, directory, found)
    arches = {node.arch for node in cluster.nodes}
    for message in flatcar_asset_problems(cluster.cluster.flatcar_version, arches, directory):
        found.add(("cluster", "flatcar_version"), message)
    return found.items


def summary(cluster: Cluster) -> str:
    return (f"cluster {cluster.cluster.name}: {len(cluster.controllers)} controller(s), "
            f"{len(cluster.workers)} worker(s), Kubernetes {cluster.cluster.k8s_version} "
            f"on Flatcar {cluster.cluster.flatcar_version}")


class SchemaFormat(str, Enum):
    json = "json"
    markdown = "markdown"


@command()
def schema(
    paths: Paths,
    fmt: Annotated[SchemaFormat, typer.Option("--format", help="json (the JSON Schema, for editors) or markdown "
                                                               "(the reference table).")] = SchemaFormat.json,
) -> None:
    """Print the JSON Schema of cluster.yaml (for editors: yaml-language-server, VS Code)."""
    if fmt == SchemaFormat.json:
        typer.echo(json.dumps(cluster_schema(), indent=2))
    else:
        typer.echo(reference_table(), nl=False)


