"""Stand-in assets: an empty file for each one a cluster's nodes fetch, so the preflight of `serve` and
`init` passes in tests whose nodes never boot (the API server and the nodes are stand-ins there too).
One helper for every test that starts either command as a process."""

from __future__ import annotations

from pathlib import Path

from app.cluster import load_cluster
from app.cluster.preflight import required_assets
from tests.support.paths import EXAMPLE


def standin_assets(root: Path, config: Path = EXAMPLE) -> Path:
    """Fill `root` with every file `config`'s nodes fetch; files already there are kept (a test may
    have put content it then downloads into one). Returns `root`, for `--assets`."""
    cluster, _ = load_cluster(config)
    for rel in required_assets(cluster):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(b"")
    return root


def serve_options(root: Path, config: Path = EXAMPLE) -> list[str]:
    """`--config CONFIG --assets ROOT` for a `serve` command line, ROOT filled as standin_assets does."""
    return ["--config", str(config), "--assets", str(standin_assets(root, config))]
