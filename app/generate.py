"""`generate`: gather the inputs (secrets, appliance facts), render the tree, switch to it atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from app.atomic import WriteSummary, write_tree
from app.cluster import Cluster
from app.credentials import load_secrets
from app.render.templates import Templates
from app.cluster.sysexts import ASSET_DIR, cluster_sysexts, served_sums_problems
from app.render.tree import Appliance, render_tree

# tftp/ name -> file name in the iPXE directory. dnsmasq asks BIOS clients for `<name>.0`.
IPXE_FILES = {"undionly.kpxe": "undionly.kpxe", "undionly.kpxe.0": "undionly.kpxe",
              "ipxe.efi": "ipxe.efi", "snp.efi": "snp.efi"}


@dataclass
class GenerateResult:
    summary: WriteSummary
    secrets_created: bool
    warnings: list[str]


def generate(cluster: Cluster, output: Path, templates: Path | None, *, assets: Path, ipxe_dir: Path,
             ignition_schemas: Path | None = None, rotate_secrets: bool = False,
             now: dt.datetime | None = None) -> GenerateResult:
    output = output.resolve()
    warnings: list[str] = []
    secrets, created = load_secrets(output, rotate=rotate_secrets, now=now or dt.datetime.now(dt.UTC))
    secrets = secrets.with_token(cluster.cluster.kubeadm_token)
    appliance = Appliance(output_dir=output, ipxe_binaries=_ipxe_binaries(ipxe_dir, warnings),
                          sysext_hashes=_sysext_hashes(cluster, assets, warnings), ignition_schemas=ignition_schemas)
    files = render_tree(cluster, secrets, Templates(templates), appliance)  # raises before any write
    summary = write_tree(output, files)  # the whole tree switches at once, or not at all
    return GenerateResult(summary, created, warnings + summary.warnings)


def _ipxe_binaries(ipxe_dir: Path, warnings: list[str]) -> dict[str, bytes]:
    found = {}
    for name, source in IPXE_FILES.items():
        path = ipxe_dir / source
        if path.is_file():
            found[name] = path.read_bytes()
    missing = sorted({IPXE_FILES[n] for n in IPXE_FILES} - {IPXE_FILES[n] for n in found})
    if missing:
        warnings.append(f"no {', '.join(missing)} in {ipxe_dir}: those firmwares cannot chain to iPXE over "
                        "TFTP (install Debian's `ipxe` package, or pass --ipxe-dir)")
    return found


def _sysext_hashes(cluster: Cluster, assets: Path, warnings: list[str]) -> dict[str, str]:
    """sha512 of each sysext file some node will fetch (Kubernetes' and `sysexts:`), so Ignition
    verifies the download; and, with sysupdate on, whether the served SHA256SUMS can be trusted."""
    hashes = {}
    for name in sorted(cluster_sysexts(cluster)):
        path = assets / ASSET_DIR / name
        if not path.is_file():
            warnings.append(f"{path} not found: nodes will fetch {name} without a verification hash")
            continue
        hashes[name] = "sha512-" + _sha512(path)
    warnings.extend(served_sums_problems(cluster, assets))
    return hashes


def _sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
