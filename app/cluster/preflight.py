"""Preflight: every file the cluster's nodes will fetch from the appliance's assets, and which are
missing. `serve` and `init` refuse to start without them, with one message: a node powered on (or
PXE-booting) now would boot into a 404, or install nothing."""

from __future__ import annotations

from pathlib import Path

from app.cluster.model import Cluster
from app.cluster.sysexts import ASSET_DIR, cluster_sysexts, missing_files
from app.layout import FLATCAR_ASSET_DIR, FLATCAR_FILES

FETCH_HINT = ("fetch and verify them with `bootstrap-node assets fetch {assets}` (`--from DIR` without internet), "
              "or run the image, which has them under /assets")


def flatcar_files(cluster: Cluster) -> list[str]:
    """Flatcar's files, relative to the assets directory, for each architecture the nodes have."""
    version = cluster.cluster.flatcar_version
    arches = sorted({node.arch for node in cluster.nodes})
    return [f"{FLATCAR_ASSET_DIR[arch]}/{version}/{name}" for arch in arches for name in FLATCAR_FILES]


def required_assets(cluster: Cluster) -> list[str]:
    """Every file the nodes fetch from the assets directory, relative to it."""
    return flatcar_files(cluster) + [f"{ASSET_DIR}/{file}" for file in sorted(cluster_sysexts(cluster))]


def missing_assets(cluster: Cluster, assets: Path) -> list[str]:
    """One line per missing file: Flatcar's, then the sysexts' (each with how to bake it)."""
    lines = [f"{assets / rel} is missing" for rel in flatcar_files(cluster) if not (assets / rel).is_file()]
    return lines + [message for _, message in missing_files(cluster, assets)]


def fetch_hint(assets: Path) -> str:
    return FETCH_HINT.format(assets=assets)


# What each command has not done when it refuses, and how to start it anyway where that is allowed.
NOT_DONE = {"init": "nothing was started or powered on", "serve": "nothing was started"}
ESCAPE = {"serve": "\nfor development without them: `serve --skip-preflight` (nodes then PXE-boot into 404s)"}


def refusal(cluster: Cluster, assets: Path, command: str) -> str | None:
    """Why `command` (serve or init) must not start: each missing file, then how to fetch them; None
    when every file the nodes fetch is in `assets`."""
    if not (missing := missing_assets(cluster, assets)):
        return None
    return (f"{command}: the nodes could not install: {len(missing)} file(s) they fetch are not in --assets "
            f"{assets}; {NOT_DONE[command]}\n" + "\n".join(missing) + f"\n{fetch_hint(assets)}"
            + ESCAPE.get(command, ""))


def fetch_environments(cluster: Cluster) -> list[dict[str, str]]:
    """What fetch-and-verify needs to lay out this cluster's assets: one run per node architecture."""
    releases = " ".join(f"{entry.name}-{entry.version}" for entry in cluster.sysexts)
    return [{"FLATCAR_VERSION": cluster.cluster.flatcar_version, "FLATCAR_CHANNEL": cluster.cluster.flatcar_channel,
             "K8S_VERSION": cluster.cluster.k8s_version, "ARCH": arch, "SYSEXTS": releases}
            for arch in sorted({node.arch for node in cluster.nodes})]
