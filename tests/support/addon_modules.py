"""The add-ons' real release trees (flannel, Argo CD) as the Go module proxy serves them, pinned in
app/asset_scripts/addon-pins. Tests get the zips through `go mod download`, which checks them
against the Go checksum database, into the shared build cache (outside the repository; see
tests/support/built.py); a machine without the go command or the proxy skips, unless
BOOTSTRAP_NODE_REQUIRE_BUILT=1."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.built import cache_root
from tests.support.paths import REPO

PINS = REPO / "app" / "asset_scripts" / "addon-pins"


def pins() -> dict[str, str]:
    """addon-pins as the shell reads it: KEY=VALUE lines, comments and blank lines skipped."""
    lines = (line.strip() for line in PINS.read_text().splitlines())
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


@dataclass(frozen=True)
class Addon:
    module: str
    version: str
    sha256: str
    h1: str
    manifest: str  # the path in the tree fetch-and-verify extracts

    @property
    def prefix(self) -> str:
        """Every path in a module zip starts with this."""
        return f"{self.module}@{self.version}/"

    @property
    def proxy_path(self) -> str:
        """The zip's path under a module proxy (upper case spelled !lower, as the protocol says)."""
        escaped = "".join(f"!{c.lower()}" if c.isupper() else c for c in self.module)
        return f"{escaped}/@v/{self.version}.zip"


def addon(key: str) -> Addon:
    """FLANNEL or ARGOCD, as pinned."""
    p = pins()
    return Addon(p[f"{key}_MODULE"], p[f"{key}_PINNED_VERSION"], p[f"{key}_PINNED_SHA256"], p[f"{key}_PINNED_H1"],
                 p[f"{key}_MANIFEST"])


def _skip(why: str):
    if os.environ.get("BOOTSTRAP_NODE_REQUIRE_BUILT") == "1":
        pytest.fail(why)
    pytest.skip(why)


def module_zip(a: Addon) -> tuple[Path, str]:
    """The zip `go mod download` verified against the checksum database, and the h1: it reported."""
    if shutil.which("go") is None:
        _skip(f"needs the go command to fetch {a.module}@{a.version} from the Go module proxy")
    # auto: Argo CD's go.mod asks for a newer Go than some machines ship (GOTOOLCHAIN=local would refuse
    # even to download it); the go command fetches that toolchain through the proxy once.
    toolchain = os.environ.get("GOTOOLCHAIN", "auto")
    env = {**os.environ, "GOMODCACHE": str(cache_root() / "go" / "mod"), "GOFLAGS": "-mod=mod",
           "GOTOOLCHAIN": "auto" if toolchain == "local" else toolchain}
    run = subprocess.run(["go", "mod", "download", "-json", f"{a.module}@{a.version}"], capture_output=True,
                         text=True, env=env, cwd="/", timeout=600)  # "/": no go.mod around
    answer = json.loads(run.stdout) if run.stdout.strip() else {}
    if run.returncode != 0 or "Zip" not in answer:
        _skip(f"go mod download {a.module}@{a.version} failed (is the Go module proxy reachable?): "
              f"{answer.get('Error') or run.stderr[-500:]}")
    return Path(answer["Zip"]), answer["Sum"]


def member(zip_path: Path, a: Addon, path: str) -> bytes:
    with zipfile.ZipFile(zip_path) as z:
        return z.read(a.prefix + path)


def members(zip_path: Path, a: Addon, folder: str) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as z:
        return {n[len(a.prefix):]: z.read(n) for n in sorted(z.namelist()) if n.startswith(a.prefix + folder)}


def dirhash_h1(zip_path: Path) -> str:
    """The Go checksum database's h1: of a module zip (golang.org/x/mod/sumdb/dirhash.Hash1): sha256
    over the sorted lines "<sha256 of file>  <name>\\n", base64."""
    with zipfile.ZipFile(zip_path) as z:
        names = sorted(n for n in z.namelist() if not n.endswith("/"))
        summary = "".join(f"{hashlib.sha256(z.read(n)).hexdigest()}  {n}\n" for n in names)
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()
