"""Which iPXE build each x86-64 UEFI machine chainloads: dnsmasq.conf variables, and the table serve's
UEFI HTTP Boot answer reads (matchbox/uefi-loaders.json).

UEFI firmware fetches the loader over TFTP in lock-step blocks, so its size sets how long a rack
powering on at once waits: snponly.efi (~170 KB) drives the NIC through the firmware's own driver,
ipxe.efi (~1 MB) brings its own for firmware whose network driver misbehaves under iPXE. The
cluster picks one; a node may pick the other, which dnsmasq tells apart by the node's MAC.
"""

from __future__ import annotations

import json

from app.cluster import Cluster
from app.layout import UEFI_BUILDS

UEFI_LOADER_FILE = dict(zip(("snponly", "ipxe"), UEFI_BUILDS, strict=True))  # pxe.uefi_loader -> tftp/ file


def uefi_loader_files(cluster: Cluster) -> set[str]:
    """The UEFI loaders some machine may ask for: the default (strangers get it too) and the nodes' own."""
    chosen = {cluster.default_uefi_loader} | {cluster.uefi_loader_of(n) for n in cluster.nodes if n.arch == "amd64"}
    return {UEFI_LOADER_FILE[loader] for loader in chosen}


def pxe_variables(cluster: Cluster) -> dict:
    """UEFI_LOADER: the default loader's file. UEFI_OVERRIDES: per loader that is not the default, its
    dnsmasq tag, file and the MACs of the nodes that chose it. UEFI_DEFAULT_TAGS: the tags under
    which the default applies (not iPXE already, and none of the overrides)."""
    default = cluster.default_uefi_loader
    overrides = []
    for loader, file in UEFI_LOADER_FILE.items():
        nodes = [n for n in cluster.nodes
                 if n.arch == "amd64" and loader != default and cluster.uefi_loader_of(n) == loader]
        if nodes:
            overrides.append({"loader": loader, "tag": f"uefi-{loader}", "file": file,
                              "macs": [n.mac for n in nodes], "nodes": [n.name for n in nodes]})
    tags = ",".join(["tag:!ipxe", *(f"tag:!{o['tag']}" for o in overrides)])
    return {"UEFI_LOADER": UEFI_LOADER_FILE[default], "UEFI_OVERRIDES": overrides, "UEFI_DEFAULT_TAGS": tags}


def uefi_loaders_file(cluster: Cluster) -> bytes:
    """{"default": file, "nodes": {mac: file}}: what serve's HTTP Boot answer names, per MAC, so that a
    machine booting over HTTP gets the build its PXE boot would."""
    nodes = {n.mac: UEFI_LOADER_FILE[cluster.uefi_loader_of(n)] for n in cluster.nodes
             if n.arch == "amd64" and cluster.uefi_loader_of(n) != cluster.default_uefi_loader}
    return (json.dumps({"default": UEFI_LOADER_FILE[cluster.default_uefi_loader], "nodes": nodes}, indent=2,
                       sort_keys=True) + "\n").encode()
