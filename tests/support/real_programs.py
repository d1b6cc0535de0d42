"""Real Ignition and real Matchbox, as scripts/ignition-binaries and scripts/matchbox-binary build
them: where the tests find them (skipping, or failing under BOOTSTRAP_NODE_REQUIRE_BUILT, when they
are not built) and how they run them. The versions come from scripts/lib/real-versions, which CI's
build step reads too."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.built import built
from tests.support.paths import REPO


def _versions() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / "scripts/lib/real-versions").read_text().splitlines()
             if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


VERSIONS = _versions()
IGNITION_VERSION = VERSIONS["IGNITION_VERSION"]
MATCHBOX_VERSION = VERSIONS["MATCHBOX_VERSION"]


def ignition_dir() -> Path:
    return built("ignition-binaries", "ignition", IGNITION_VERSION, "ignition", "ignition-validate")


def matchbox_binary() -> Path:
    return built("matchbox-binary", "matchbox", MATCHBOX_VERSION, "matchbox") / "matchbox"


@dataclass(frozen=True)
class Verdict:
    """What `ignition-validate` said about one config: its exit status and every line it printed
    (errors and warnings alike; a clean config prints nothing)."""

    returncode: int
    lines: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return self.returncode == 0 and not self.lines


def validate(validator: Path, config: bytes | dict, scratch: Path) -> Verdict:
    """Run real `ignition-validate` on one config (bytes as served, or a dict)."""
    data = config if isinstance(config, bytes) else json.dumps(config).encode()
    path = scratch / "config.ign"
    path.write_bytes(data)
    run = subprocess.run([str(validator), str(path)], capture_output=True, text=True, timeout=60)
    lines = tuple(line for line in (run.stdout + run.stderr).splitlines() if line.strip())
    return Verdict(run.returncode, lines)
