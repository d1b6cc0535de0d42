"""`make bench`: assets against nginx and http.server, the boot API at scale against a Matchbox-like
reference, the boot API open-loop while images stream (streaming.py), and generate at scale. The boot
storm is apart (`make bench-storm`, root: storm.py). Prints a table and writes bench/results.json. Not a test: numbers
are reported, never asserted. Every comparison is made in the same run on the same machine."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import loadgen, servers, streaming  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
ASSET_MB = int(os.environ.get("BENCH_ASSET_MB", "256"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CLIENTS", "1,16,64,256").split(",")]
GROUPS = [int(g) for g in os.environ.get("BENCH_GROUPS", "1000,10000").split(",")]
NODES = [int(n) for n in os.environ.get("BENCH_NODES", "10,100,1000").split(",")]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_assets(work: Path) -> list[dict]:
    root = big_asset(work)
    empty = work / "empty-data"
    empty.mkdir(exist_ok=True)
    rows = []
    for make in (lambda: servers.nginx(work, root), lambda: servers.ours(work, root, empty),
                 lambda: servers.http_server(work, root)):
        server = make()
        try:
            for clients in CONCURRENCY:
                cpu0, t0 = server.cpu_seconds(), time.monotonic()
                results = loadgen.run(server.url, "/assets/flatcar/image.bin", clients, SECONDS)
                elapsed, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
                rows.append({"server": server.name, **download_row(results, clients, elapsed, cpu)})
                print(rows[-1], flush=True)
        finally:
            server.stop()
    for row in rows:
        ref = next(r for r in rows if r["server"] == "nginx" and r["clients"] == row["clients"])
        row["throughput_vs_nginx"] = round(row["throughput_MiBps"] / ref["throughput_MiBps"], 3)
        row["ttfb_p99_vs_nginx"] = round(row["ttfb_p99_ms"] / ref["ttfb_p99_ms"], 2) if ref["ttfb_p99_ms"] else None
    return rows


def big_asset(work: Path) -> Path:
    root = work / "assets"
    (root / "flatcar").mkdir(parents=True, exist_ok=True)
    big = root / "flatcar" / "image.bin"
    if not big.exists() or big.stat().st_size != ASSET_MB << 20:
        with big.open("wb") as f:
            for _ in range(ASSET_MB):
                f.write(os.urandom(1 << 20))
    return root


def image_layout(work: Path, blob: Path) -> tuple[Path, str]:
    """An OCI layout whose one layer is `blob` itself (a hard link: same inode, same page cache)."""
    digest = hashlib.sha256()
    with blob.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    layout = work / "layout"
    shutil.rmtree(layout, ignore_errors=True)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    os.link(blob, blobs / digest.hexdigest())

    def put(document: dict) -> dict:
        data = json.dumps(document).encode()
        name = hashlib.sha256(data).hexdigest()
        (blobs / name).write_bytes(data)
        return {"mediaType": document.get("mediaType", "application/vnd.oci.image.config.v1+json"),
                "digest": f"sha256:{name}", "size": len(data)}

    config = put({"architecture": "amd64", "os": "linux"})
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{digest.hexdigest()}",
             "size": blob.stat().st_size}
    manifest = put({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config, "layers": [layer]})
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {**manifest, "annotations": {"org.opencontainers.image.ref.name": "registry.k8s.io/bench:1"}}]}))
    return layout, layer["digest"]


def bench_registry(work: Path) -> list[dict]:
    """Blob throughput of /v2/ against /assets/ for the same file, same server process, same run."""
    root = big_asset(work)
    layout, digest = image_layout(work, root / "flatcar" / "image.bin")
    paths = {"assets": "/assets/flatcar/image.bin", "registry-blob": f"/v2/bench/blobs/{digest}?ns=registry.k8s.io"}
    server = servers.ours_with_images(work, root, layout)
    rows = []
    try:
        for n, clients in enumerate(CONCURRENCY):
            # Alternate which route goes first: on a shared machine the first of a pair is often slower.
            for route, path in sorted(paths.items(), reverse=n % 2 == 1):
                cpu0, t0 = server.cpu_seconds(), time.monotonic()
                results = loadgen.run(server.url, path, clients, SECONDS)
                elapsed, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
                rows.append({"route": route, **download_row(results, clients, elapsed, cpu)})
                print(rows[-1], flush=True)
    finally:
        server.stop()
    for row in rows:
        ref = next(r for r in rows if r["route"] == "assets" and r["clients"] == row["clients"])
        row["throughput_vs_assets"] = round(row["throughput_MiBps"] / ref["throughput_MiBps"], 3)
    return rows


def data_dir(work: Path, groups: int) -> tuple[Path, Path]:
    d = work / f"matchbox-{groups}"
    macs = work / f"macs-{groups}.txt"
    if (d / "groups").is_dir() and len(os.listdir(d / "groups")) == groups:
        return d, macs
    shutil.rmtree(d, ignore_errors=True)
    for sub in ("groups", "profiles", "ignition"):
        (d / sub).mkdir(parents=True)
    config = json.loads((REPO / "tests" / "fixtures" / "bench-node.ign").read_text()) \
        if (REPO / "tests" / "fixtures" / "bench-node.ign").exists() else {"ignition": {"version": "3.4.0"}}
    (d / "ignition" / "node.ign").write_text(json.dumps(config))
    (d / "profiles" / "node.json").write_text(json.dumps({"id": "node", "ignition_id": "node.ign", "boot": {
        "kernel": "/assets/flatcar/k", "initrd": ["/assets/flatcar/i"], "args": ["flatcar.first_boot=1"]}}))
    lines = []
    for i in range(groups):
        mac = "52:54:%02x:%02x:%02x:%02x" % (0x10, (i >> 16) & 255, (i >> 8) & 255, i & 255)
        lines.append(mac)
        (d / "groups" / f"n{i}.json").write_text(json.dumps(
            {"id": f"n{i}", "profile": "node", "selector": {"mac": mac}, "metadata": {"name": f"n{i}"}}))
    macs.write_text("\n".join(lines) + "\n")
    return d, macs


WRK_SCRIPT = """
local macs = {}
for line in io.lines(os.getenv("BENCH_MACS")) do macs[#macs + 1] = line end
math.randomseed(os.time())
request = function() return wrk.format("GET", os.getenv("BENCH_PATH") .. "?mac=" .. macs[math.random(#macs)]) end
"""


def wrk(url: str, path: str, macs: Path, work: Path) -> dict:
    script = work / "random-mac.lua"
    script.write_text(WRK_SCRIPT)
    out = subprocess.run(["wrk", "-t2", "-c200", f"-d{int(SECONDS)}s", "--timeout", "10s", "--latency", "-s",
                          str(script), url],
                         env={**os.environ, "BENCH_MACS": str(macs), "BENCH_PATH": path},
                         capture_output=True, text=True, check=True).stdout

    def ms(label):
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return round(float(m[1]) * {"us": 0.001, "ms": 1, "s": 1000}[m[2]], 3) if m else None

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    row = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50_ms": ms("50"), "p99_ms": ms("99"),
           "non_2xx": int(non2xx[1]) if non2xx else 0, "timeouts_10s": int(timeouts[1]) if timeouts else 0}
    if not row["rps"] or (row["timeouts_10s"] and not row["p50_ms"]):
        row["p50_ms"] = row["p99_ms"] = None  # nothing completed in the window: no latency to report
    return row


def bench_api(work: Path) -> list[dict]:
    rows = []
    for groups in GROUPS:
        d, macs = data_dir(work, groups)
        makers = [lambda: servers.ours(work, work / "assets", d), lambda: servers.reference_matchbox(work, d)]
        if servers.matchbox_binary():
            makers.append(lambda: servers.matchbox(work, d, servers.matchbox_binary()))
        for make in makers:
            server = make()
            try:
                for path in ("/ipxe", "/ignition"):
                    row = {"server": server.name, "groups": groups, "route": path, **wrk(server.url, path, macs, work)}
                    rows.append(row)
                    print(row, flush=True)
            finally:
                server.stop()
    return rows


def bench_generate(work: Path) -> list[dict]:
    import yaml
    base = yaml.safe_load((REPO / "cluster.yaml.example").read_text())
    rows = []
    for n in NODES:
        cfg = dict(base, network={"cidr": "10.0.0.0/16", "gateway": "10.0.0.1", "dns": ["10.0.0.1"]})
        cfg["nodes"] = [{"name": f"n{i}", "role": "controller" if i < 3 else "worker",
                         "mac": "52:54:%02x:%02x:%02x:%02x" % (0x20, (i >> 16) & 255, (i >> 8) & 255, i & 255),
                         "ip": f"10.0.{(i + 20) // 250}.{(i + 20) % 250 + 1}",
                         "install_disk": f"/dev/disk/by-id/wwn-0x5000c500{i:08x}"} for i in range(n)]
        path = work / f"cluster-{n}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        out = work / f"generate-{n}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "app", "--config", str(path), "--output", str(out),
                                 "--templates", str(work / "none"), "generate", "--assets", str(work / "none"),
                                 "--ipxe-dir", str(work / "none")], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        rows.append({"nodes": n, "wall_s": round(time.monotonic() - started, 2),
                     "peak_MiB": round(usage.ru_maxrss / 1024, 1), "exit": os.waitstatus_to_exitcode(status)})
        print(rows[-1], flush=True)
    return rows


def download_row(results, clients: int, elapsed: float, cpu: float) -> dict:
    """One row of a download run: throughput, time to first byte, CPU per GiB, completions, errors."""
    received = sum(r.received for r in results)
    ttfb = [t for r in results for t in r.ttfb]
    return {"clients": clients, "seconds": round(elapsed, 2),
            "throughput_MiBps": round(received / elapsed / (1 << 20), 1),
            "ttfb_p50_ms": round(pct(ttfb, 0.5) * 1000, 2), "ttfb_p99_ms": round(pct(ttfb, 0.99) * 1000, 2),
            "cpu_s_per_GiB": round(cpu / max(received / (1 << 30), 1e-9), 3),
            "downloads": sum(r.completed for r in results), "errors": sum(r.errors for r in results)}


def this_machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release(),
            "cpu": next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                         if l.startswith("model name")), "?")}


def main() -> int:
    work = Path(os.environ.get("BENCH_WORK", tempfile.gettempdir())) / "bootstrap-node-bench"
    work.mkdir(parents=True, exist_ok=True)
    out = HERE / "results.json"
    results = json.loads(out.read_text()) if out.exists() and sys.argv[1:] else {}  # a partial run updates
    results.update({"machine": this_machine(), "settings": {"asset_MiB": ASSET_MB, "seconds": SECONDS}})
    parts = sys.argv[1:] or ["generate", "api", "assets", "registry", "streaming"]
    for part in parts:
        results[part] = {"generate": bench_generate, "api": bench_api, "assets": bench_assets,
                         "registry": bench_registry, "streaming": streaming.bench}[part](work)
        results.setdefault("machines", {})[part] = this_machine()  # parts may come from different runs
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
