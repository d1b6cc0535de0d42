"""The real Go programs (kubeadm, kube-apiserver, etcd, ignition, matchbox, ...) built by
scripts/*-binaries into a cache outside the repository. Tests ask for them here: a build that is
not there skips the test with the command that makes it, unless BOOTSTRAP_NODE_REQUIRE_BUILT=1
(CI sets it after building), where a missing build is a failure."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO


def cache_root() -> Path:
    if os.environ.get("BOOTSTRAP_NODE_CACHE"):
        return Path(os.environ["BOOTSTRAP_NODE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bootstrap-node"


def built(script: str, tool: str, version: str, *names: str) -> Path:
    """The directory of `tool` at `version` holding every binary in `names`, as scripts/`script`
    VERSION leaves it; or skip (fail under BOOTSTRAP_NODE_REQUIRE_BUILT) with how to build it."""
    directory = cache_root() / tool / version
    missing = [n for n in names if not (directory / n).is_file()]
    if (directory / "BUILD-INFO").is_file() and not missing:
        return directory
    why = (f"needs {tool} {version} built from source: run `scripts/{script} {version}` "
           f"(missing in {directory}: {', '.join(missing) or 'BUILD-INFO'})")
    if os.environ.get("BOOTSTRAP_NODE_REQUIRE_BUILT") == "1":
        pytest.fail(why)
    pytest.skip(why)


def build(script: str, version: str) -> Path:
    """Run scripts/`script` VERSION (cached builds return at once) and return its directory."""
    run = subprocess.run([str(REPO / "scripts" / script), version], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"scripts/{script} {version} failed:\n{run.stderr[-3000:]}")
    return Path(run.stdout.strip().splitlines()[-1])
