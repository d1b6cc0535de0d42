"""`generate`: gather the inputs (secrets, appliance facts), render the tree, switch to it atomically."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from app import pki
from app.cluster import Cluster
from app.cluster.sysexts import ASSET_DIR, cluster_sysexts, served_sums_problems
from app.cluster_record import cluster_exists, forget_cluster
from app.credentials import load_secrets
from app.generations import WriteSummary, write_tree
from app.render.pxe import uefi_loader_files
from app.render.templates import Templates
from app.render.tree import Appliance, RenderError, render_tree
from app.wait.gate import api_endpoints
from app.wait.tokens import JoinPlan, prepare_joins

# tftp/ name -> file name in the iPXE directory, per node architecture. dnsmasq asks BIOS clients for
# `<name>.0`. Debian's `ipxe` package has the x86 ones; arm64 needs an iPXE build of its own
# (`make bin-arm64-efi/snp.efi`), named snp-arm64.efi in --ipxe-dir. The x86-64 UEFI loaders
# (snponly.efi, ipxe.efi) are added for the `pxe.uefi_loader` choices cluster.yaml makes.
IPXE_FILES = {"amd64": {"undionly.kpxe": "undionly.kpxe", "undionly.kpxe.0": "undionly.kpxe"},
              "arm64": {"snp-arm64.efi": "snp-arm64.efi"}}
NO_ARM64_IPXE = ("{dir} has no snp-arm64.efi, so the arm64 nodes ({nodes}) cannot PXE-boot: Debian's ipxe "
                 "package ships x86 binaries only. Build iPXE for arm64 (`make bin-arm64-efi/snp.efi` in "
                 "ipxe/src), copy it as snp-arm64.efi into a directory with the x86 binaries, and pass it "
                 "as --ipxe-dir")


@dataclass
class GenerateResult:
    summary: WriteSummary
    secrets_created: bool
    warnings: list[str]
    cluster_exists: bool = False  # rendered for a running cluster: every node joins it
    tokens_minted: list[str] = field(default_factory=list)  # nodes given a fresh join token through the API


def generate(cluster: Cluster, output: Path, templates: Path | None, *, assets: Path, ipxe_dir: Path,
             ignition_schemas: Path | None = None, rotate_secrets: bool = False, new_cluster: bool = False,
             api_servers: list[str] | None = None, now: dt.datetime | None = None, join_api=None) -> GenerateResult:
    """`new_cluster`: forget that the cluster exists (the first controller runs `kubeadm init` again).
    `api_servers`: where to reach the API for join tokens (default: the name, VIP and controllers).
    `join_api`: a client to mint join tokens with instead (cluster mode: its ServiceAccount, so that the
    API server's audit log names the appliance, not an admin certificate)."""
    output = output.resolve()
    now = now or dt.datetime.now(dt.UTC)
    warnings: list[str] = []
    secrets, created = load_secrets(output, rotate=rotate_secrets, now=now)
    secrets = secrets.with_token(cluster.cluster.kubeadm_token)
    ipxe = _ipxe_binaries(cluster, ipxe_dir, warnings)
    exists = not new_cluster and cluster_exists(output, pki.ca_pin(secrets.ca_crt))
    joins = (prepare_joins(cluster, output, secrets, api_endpoints(cluster, api_servers), now, join_api) if exists
             else JoinPlan())
    hashes = _sysext_hashes(cluster, assets, warnings)
    appliance = Appliance(output_dir=output, ipxe_binaries=ipxe, sysext_hashes=hashes,
                          ignition_schemas=ignition_schemas, cluster_exists=exists, join_tokens=joins.tokens,
                          certificate_keys=joins.certificate_keys)
    files = render_tree(cluster, secrets, Templates(templates), appliance)  # raises before any write
    summary = write_tree(output, files)  # the whole tree switches at once, or not at all
    if new_cluster:
        forget_cluster(output)  # only once the init config is in place
    return GenerateResult(summary, created, warnings + joins.warnings + summary.warnings, exists, joins.minted)


def _ipxe_binaries(cluster: Cluster, ipxe_dir: Path, warnings: list[str]) -> dict[str, bytes]:
    """The iPXE binaries for the nodes' architectures. Missing x86 ones are a warning (many sites have
    UEFI HTTP boot or one firmware kind only); a missing arm64 one is an error: no arm64 node could boot."""
    found = {}
    arches = {n.arch for n in cluster.nodes}
    wanted = {arch: dict(IPXE_FILES[arch]) for arch in arches}
    if "amd64" in wanted:
        wanted["amd64"].update({name: name for name in sorted(uefi_loader_files(cluster))})
    for arch in sorted(arches):
        for name, source in wanted[arch].items():
            if (ipxe_dir / source).is_file():
                found[name] = (ipxe_dir / source).read_bytes()
    if "arm64" in arches and "snp-arm64.efi" not in found:
        arm64 = [n.name for n in cluster.nodes if n.arch == "arm64"]
        raise RenderError(NO_ARM64_IPXE.format(dir=ipxe_dir, nodes=", ".join(arm64)))
    missing = sorted({source for name, source in wanted["amd64"].items() if name not in found}) \
        if "amd64" in arches else []
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
