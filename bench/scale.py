"""Clusters of any size for the benchmarks: cluster.example's settings with N generated nodes, and the
`generate` command run over them."""

from __future__ import annotations

import ipaddress
import os
import shutil
import statistics
import subprocess
import sys
import time
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


def generated_tree(work: Path, prefix: str, nodes: int, tag: int) -> tuple[Path, Path]:
    """`generate`'s tree for a cluster of `nodes` (made once, kept in `work`) and the query string each
    node's iPXE sends, one a line."""
    out = work / f"{prefix}-tree-{nodes}"
    queries = work / f"{prefix}-queries-{nodes}.txt"
    config = cluster(nodes, tag=tag)
    if not (out / "matchbox" / "groups").is_dir():
        path = write_cluster(work / f"{prefix}-cluster-{nodes}.yaml", config)
        generate(path, out, work / "none", work / "none", REPO / "templates")
    queries.write_text("".join(f"mac={n['mac'].replace(':', '-')}\n" for n in config["nodes"]))
    return out, queries


def _timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one command run from `cwd`'s code."""
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"generate from {cwd} failed: {proc.stderr.read().decode()[-2000:]}")
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime


def compare(nodes: int, before: Path, after: Path, repeats: int, work: Path) -> dict:
    """`generate` for `nodes` nodes from two checkouts, interleaved (A, B, B, A, …) so that the
    machine's load drifts over both, each into a fresh output; then `after` over `before`'s output,
    which must write no new generation (same bytes, file for file)."""
    config = write_cluster(work / f"compare-{nodes}.yaml", cluster(nodes))
    none, templates = work / "none", REPO / "templates"
    runs: dict[str, list] = {"before": [], "after": []}
    for rep in range(repeats):
        for name in (("before", "after") if rep % 2 == 0 else ("after", "before")):
            out = work / f"compare-{name}"
            shutil.rmtree(out, ignore_errors=True)
            runs[name].append(_timed(generate_command(config, out, none, none, templates),
                                     before if name == "before" else after))
    out = work / "compare-before"
    current = os.readlink(out / ".generations" / "current")
    _timed(generate_command(config, out, none, none, templates), after)
    same = os.readlink(out / ".generations" / "current") == current

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    row = {"nodes": nodes, "repeats": repeats, "same_output": same, "load1": round(os.getloadavg()[0], 2)}
    for name, values in runs.items():
        row[f"{name}_wall_s"], row[f"{name}_cpu_s"] = med([w for w, _ in values]), med([c for _, c in values])
        row[f"{name}_cpu_s_each"] = [round(c, 2) for _, c in values]
    row["cpu_after_vs_before"] = round(row["after_cpu_s"] / row["before_cpu_s"], 3)
    return row


if __name__ == "__main__":
    # python bench/scale.py NODES BEFORE_CHECKOUT [REPEATS]: this checkout's generate against another's.
    import json
    import tempfile
    scratch = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        print(json.dumps(compare(int(sys.argv[1]), Path(sys.argv[2]).resolve(), REPO,
                                 int(sys.argv[3]) if len(sys.argv) > 3 else 3, scratch)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
