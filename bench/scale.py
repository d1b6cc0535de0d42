"""Clusters of any size for the benchmarks: cluster.example's settings with N generated nodes, and the
`generate` command run over them."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def node_mac(i: int, tag: int = 0x20) -> str:
    return f"52:54:{tag:02x}:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"


def cluster(n: int, cidr: str = "10.0.0.0/16", bootstrap_ip: str | None = None, first_host: int = 20,
            tag: int = 0x20) -> dict:
    """cluster.yaml.example with `n` nodes (three controllers, the rest workers) on `cidr`; node i has
    node_mac(i) and the (first_host + i)-th address of the network."""
    base = yaml.safe_load((REPO / "cluster.yaml.example").read_text())
    net = ipaddress.ip_network(cidr)
    gateway = str(net[1])
    config = dict(base, network={"cidr": cidr, "gateway": gateway, "dns": [gateway]})
    if bootstrap_ip:
        config["bootstrap"] = dict(base["bootstrap"], ip=bootstrap_ip)
        config["control_plane_vip"] = str(net[10])
    config["nodes"] = [{"name": f"n{i}", "role": "controller" if i < 3 else "worker", "mac": node_mac(i, tag),
                        "ip": str(net[first_host + i]), "install_disk": f"/dev/disk/by-id/wwn-0x5000c500{i:08x}"}
                       for i in range(n)]
    return config


def write_cluster(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def generate_command(config: Path, out: Path, assets: Path, ipxe_dir: Path, templates: Path) -> list[str]:
    return [sys.executable, "-m", "app", "--config", str(config), "--output", str(out), "--templates",
            str(templates), "generate", "--assets", str(assets), "--ipxe-dir", str(ipxe_dir)]


def generate(config: Path, out: Path, assets: Path, ipxe_dir: Path, templates: Path) -> None:
    result = subprocess.run(generate_command(config, out, assets, ipxe_dir, templates), cwd=REPO,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"generate failed: {result.stderr[-2000:]}")
