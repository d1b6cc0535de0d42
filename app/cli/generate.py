"""`generate`: render the output tree from cluster.yaml and templates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import (
    DEFAULT_ASSETS,
    DEFAULT_IMAGES,
    DEFAULT_IPXE_DIR,
    AssetsOpt,
    ImagesOpt,
    IpxeDirOpt,
    Paths,
    command,
    fail,
    load_or_exit,
)
from app.cli.wait import Server
from app.cluster.model import Cluster
from app.exitcodes import ExitCode


@command()
def generate(
    paths: Paths,
    assets: AssetsOpt = DEFAULT_ASSETS,
    ipxe_dir: IpxeDirOpt = DEFAULT_IPXE_DIR,
    ignition_schemas: Annotated[Path | None, typer.Option(
        envvar="BOOTSTRAP_IGNITION_SCHEMAS", help="Directory of official Ignition JSON Schemas to check against.")]
        = None,
    rotate_secrets: Annotated[bool, typer.Option(
        help="Replace the CA, keys and tokens. Installed nodes will no longer trust the cluster.")] = False,
    images: ImagesOpt = DEFAULT_IMAGES,
    new_cluster: Annotated[bool, typer.Option(
        help="Start the cluster over: forget that it exists, so the first controller's config runs `kubeadm "
             "init` again. Only for a cluster that is gone (see docs/day-2.md).")] = False,
    server: Server = None,
) -> None:
    """Render the output tree: Matchbox data, Ignition per node, PKI, dnsmasq.conf, TFTP files.

    Atomic and idempotent: a failure leaves the previous output untouched; the same inputs give
    the same bytes. Secrets are created once and reused. Once `wait` has seen the cluster, every node's
    config joins it, and a node about to (re)install gets a fresh join token made through the API.
    """
    cluster = load_or_exit(paths.config)
    result = generate_or_exit(cluster, paths, assets=assets, ipxe_dir=ipxe_dir, ignition_schemas=ignition_schemas,
                              rotate_secrets=rotate_secrets, new_cluster=new_cluster, api_servers=server)
    _warn_missing_images(cluster, paths, images)
    s = result.summary
    if result.secrets_created:
        typer.echo(f"created new secrets in {paths.output / 'credentials'} (CA, service-account key, token)")
    typer.echo(f"{paths.output}: {len(s.written)} written, {len(s.unchanged)} unchanged, {len(s.removed)} removed "
               f"({len(cluster.nodes)} nodes)")
    if new_cluster:
        typer.echo(f"{cluster.bootstrap_node.name} will run kubeadm init: a new cluster (the old one is forgotten)")
    elif result.cluster_exists:
        minted = f"; fresh join tokens for {', '.join(result.tokens_minted)}" if result.tokens_minted else ""
        typer.echo(f"the cluster exists: every node's config joins it{minted}")


def _warn_missing_images(cluster: Cluster, paths: Paths, layout: Path) -> None:
    """Before any node boots: say what the appliance's registry will not have."""
    from app.cli.images import layout_warning

    message = layout_warning(cluster, paths.templates, layout)
    if message is not None:
        typer.echo(f"warning: {message}", err=True)


def generate_or_exit(cluster: Cluster, paths: Paths, **options):
    """Run generate; print its warnings; on failure say the output is unchanged and exit."""
    from app.generate import generate as run
    from app.generations import OutputError
    from app.render.tree import RenderError

    try:
        result = run(cluster, paths.output, paths.templates, **options)
    except (RenderError, OutputError) as exc:
        raise fail(f"generate failed, {paths.output} left unchanged:\n{exc}", ExitCode.INVALID) from None
    except OSError as exc:
        raise fail(f"generate failed: {exc}", ExitCode.UNREADABLE) from None
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    return result
