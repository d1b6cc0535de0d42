"""Stand-in assets: an empty file for each one a cluster's nodes fetch, so `init`'s preflight passes in
tests whose nodes never boot (the API server and the nodes are stand-ins there too)."""

from __future__ import annotations

from pathlib import Path

from app.cluster import load_cluster
from app.cluster.preflight import required_assets


def standin_assets(root: Path, config: Path) -> Path:
    cluster, _ = load_cluster(config)
    for rel in required_assets(cluster):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return root
