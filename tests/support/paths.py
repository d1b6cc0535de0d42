"""Where things are: this checkout, the example cluster.yaml, and `../shared/` (the project's data
beside the repository, absent in a user's clone: tests that need it skip with a reason)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
EXAMPLE = REPO / "cluster.yaml.example"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/, or skip the test when that directory is not beside the clone."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the project's shared data beside the repository; absent in a user's clone)")
    return path


def flatcar_version_of(config: Path = EXAMPLE) -> str:
    """The Flatcar release a cluster.yaml installs (tests build asset trees for it)."""
    import yaml

    return str(yaml.safe_load(config.read_text())["cluster"]["flatcar_version"])
