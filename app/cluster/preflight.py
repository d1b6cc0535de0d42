"""Preflight: every file the cluster's nodes will fetch from the appliance's assets, and which are
missing. `init` refuses to start without them: a node powered on now would PXE-boot into a 404."""

from __future__ import annotations

from pathlib import Path

from app.cluster.model import Cluster
from app.cluster.sysexts import ASSET_DIR, cluster_sysexts, missing_files
from app.layout import FLATCAR_ASSET_DIR, FLATCAR_FILES

FETCH_HINT = ("Flatcar's files: fetch and verify them with scripts/assets/fetch-and-verify "
              "(docs/install-and-assets.md: FLATCAR_VERSION={version} ARCH={arch} ... "
              "scripts/assets/fetch-and-verify download . {assets}), or run the image, which has them under /assets")


def flatcar_files(cluster: Cluster) -> list[str]:
    """Flatcar's files, relative to the assets directory, for each architecture the nodes have."""
    version = cluster.cluster.flatcar_version
    arches = sorted({node.arch for node in cluster.nodes})
    return [f"{FLATCAR_ASSET_DIR[arch]}/{version}/{name}" for arch in arches for name in FLATCAR_FILES]


def required_assets(cluster: Cluster) -> list[str]:
    """Every file the nodes fetch from the assets directory, relative to it."""
    return flatcar_files(cluster) + [f"{ASSET_DIR}/{file}" for file in sorted(cluster_sysexts(cluster))]


def missing_assets(cluster: Cluster, assets: Path) -> list[str]:
    """One line per missing file (Flatcar's, then the sysexts'), and how to fetch Flatcar's."""
    lines = [f"{assets / rel} is missing" for rel in flatcar_files(cluster) if not (assets / rel).is_file()]
    if lines:
        arches = "|".join(sorted({node.arch for node in cluster.nodes}))
        lines.append(FETCH_HINT.format(version=cluster.cluster.flatcar_version, arch=arches, assets=assets))
    lines.extend(message for _, message in missing_files(cluster, assets))
    return lines
