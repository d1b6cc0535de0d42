"""`assets fetch`: the files the nodes install from (Flatcar's, the sysexts, the CNI manifest, Argo CD's
when gitops is set), fetched and verified into a directory with the same script the image build runs,
then checked as `init` would."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import app, default_paths, fail, load_or_exit
from app.cluster.preflight import fetch_environments, missing_assets

SCRIPT = Path(__file__).resolve().parents[1] / "asset_scripts" / "fetch-and-verify"
assets_app = typer.Typer(help="The files the nodes install from: Flatcar, the sysexts, the CNI manifest.",
                         no_args_is_help=True)
app.add_typer(assets_app, name="assets")


@assets_app.command()
def fetch(
    ctx: typer.Context,
    dest: Annotated[Path, typer.Argument(help="Directory to fill; pass it to serve and init as --assets.")],
    source: Annotated[Path | None, typer.Option(
        "--from", help="Take the files from this directory (laid out like DEST, each with a .sig or a SHA256SUMS "
                       "line) instead of the official servers: for sites without internet.")] = None,
    flannel_version: Annotated[str, typer.Option(
        help="flannel's release (cni: flannel); default: the one pinned in app/asset_scripts/addon-pins.")] = "",
    flannel_sha256: Annotated[str, typer.Option(
        envvar="FLANNEL_SHA256", help="sha256 of that release's module zip (only for a release not pinned).")] = "",
) -> None:
    """Fetch and verify the assets cluster.yaml needs into DEST (resumable; progress on a terminal).

    Flatcar's files are checked against Flatcar's signing key, the sysexts against the sysext bakery's
    SHA256SUMS, flannel's and Argo CD's release trees (from the Go module proxy) against their pinned
    sha256; any mismatch fails. Exit 0 when DEST then holds everything `init` checks for.
    """
    paths = ctx.obj or default_paths()
    cluster = load_or_exit(paths.config)
    if source is not None and not source.is_dir():
        raise fail(f"--from {source}: no such directory")
    dest.mkdir(parents=True, exist_ok=True)
    for env in fetch_environments(cluster):
        # Argo CD's tree is 58 MB: fetched only for a cluster that hands off to it.
        env |= {"FLANNEL_VERSION": flannel_version, "FLANNEL_SHA256": flannel_sha256,
                "ARGOCD_VERSION": os.environ.get("ARGOCD_VERSION", "") if cluster.gitops else "none"}
        mode, context = ("context", str(source)) if source else ("download", str(dest))
        done = subprocess.run(["sh", str(SCRIPT), mode, context, str(dest)], env={**os.environ, **env})
        if done.returncode != 0:
            raise fail(f"assets fetch: {env['ARCH']} assets failed (above); a run again resumes the downloads")
    if missing := missing_assets(cluster, dest):
        raise fail("assets fetch: still missing for init:\n" + "\n".join(missing))
    typer.echo(f"{dest}: everything the nodes fetch is here and verified; serve and init with --assets {dest}")
