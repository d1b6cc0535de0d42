"""The boot API while images stream: `/ipxe` + `/ignition` at a fixed offered rate (bench/openloop.py,
open loop) while D clients download the 256 MiB image, against the same downloads without API load.

The server is the appliance on its own generated tree (install windows on, one config per window),
with one and with two worker processes (BENCH_WORKERS), and `--bind address`: over loopback there is no neighbour table, so the machine that PXE-booted is
known by its address. Downloads are paced to share a line rate (BENCH_LINK_GBPS, 10 GbE by default).
Each simulated machine has its own loopback address (127.1.x.y for the API,
127.2.x.y for downloads), so per-address caps and windows behave as on a rack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench import loadgen, scale, servers

REPO = Path(__file__).resolve().parent.parent
NODES = int(os.environ.get("BENCH_STREAM_NODES", "1000"))
RATES = [int(r) for r in os.environ.get("BENCH_RATES", "500,1000,2000").split(",")]
DOWNLOADS = [int(d) for d in os.environ.get("BENCH_DOWNLOADS", "0,64,256").split(",")]
SECONDS = float(os.environ.get("BENCH_STREAM_SECONDS", "8"))
# Each row is run this many times and the median run (by API p99, else by throughput) reported, with
# every run's figure beside it: on a small machine the client threads and the server share the cores,
# and single runs of the same row have differed by 10x in p99.
REPEATS = int(os.environ.get("BENCH_STREAM_REPEATS", "3"))
WORKERS = [int(w) for w in os.environ.get("BENCH_WORKERS", "1,2").split(",")]  # serve --workers, each measured
# The downloads share this line rate (Gbit/s), as behind the appliance's NIC; 0: as fast as loopback
# goes, which on a small machine measures the download clients' CPU more than the server.
LINK_GBPS = float(os.environ.get("BENCH_LINK_GBPS", "10"))
IMAGE = "/assets/flatcar/image.bin"


def tree(work: Path) -> tuple[Path, Path]:
    """A generated tree for NODES nodes and the query string each node's iPXE would send."""
    return scale.generated_tree(work, "stream", NODES, 0x30)


def start_server(work: Path, out: Path, workers: int = 1) -> servers.Child:
    (out / "events.jsonl").unlink(missing_ok=True)
    port = servers.free_port()
    argv = [sys.executable, "-m", "app", "--output", str(out), "serve", "--dhcp", "none", "--tftp", "none",
            "--listen", f"127.0.0.1:{port}", "--assets", str(work / "assets"), "--bind", "address",
            "--workers", str(workers),
            "--skip-preflight"]  # the bench's assets are the files it measures, not a cluster's
    return servers.Child("bootstrap-node", argv, port, work / "stream-serve.log")


def openloop(url: str, rate: float, queries: Path, seconds: float = SECONDS) -> dict:
    result = subprocess.run([sys.executable, "-m", "bench.openloop", url, str(rate), str(seconds), str(queries)],
                            cwd=REPO, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openloop failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout)


def one_run(server: servers.Child, downloads: int, rate: float, queries: Path, seconds: float = SECONDS) -> dict:
    """D downloads for the whole window; the API load (if any) in the middle of it. `api_cpu_s` is the
    server's CPU while the API load ran (`api_s`): bench/capacity.py's CPU per request."""
    box: dict = {}
    window = seconds + 2.0
    pace = LINK_GBPS * 1e9 / 8 / downloads if LINK_GBPS and downloads else None
    thread = threading.Thread(target=lambda: box.update(r=loadgen.run(server.url, IMAGE, downloads, window, pace)))
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    if downloads:
        thread.start()
        time.sleep(1.0)  # every download under way before the API load starts
    api_cpu0, api_t0 = server.cpu_seconds(), time.monotonic()
    api = openloop(server.url, rate, queries, seconds) if rate else None
    api_s, api_cpu = time.monotonic() - api_t0, server.cpu_seconds() - api_cpu0
    if downloads:
        thread.join()
    elapsed, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
    got = box.get("r", [])
    received = sum(r.received for r in got)
    row = {"downloads": downloads, "link_Gbps": LINK_GBPS or None, "offered_rps": rate, "load1": round(os.getloadavg()[0], 2),
           "download_MiBps": round(received / elapsed / (1 << 20), 1) if downloads else None,
           "download_errors": sum(r.errors for r in got), "server_cpu_pct": round(100 * cpu / elapsed, 1)}
    if api:
        row.update({k: v for k, v in api.items() if k != "offered_rps"})
        row.update({"api_s": round(api_s, 3), "api_cpu_s": round(api_cpu, 3)})
    return row


def median_run(runs: list[dict]) -> dict:
    """The median of repeated runs of one row, with each run's p99 and throughput beside it."""
    def key(r: dict) -> float:
        return r["p99_ms"] if r.get("p99_ms") is not None else -(r["download_MiBps"] or 0)
    row = dict(sorted(runs, key=key)[len(runs) // 2])
    row["runs"] = len(runs)
    if any(r.get("p99_ms") is not None for r in runs):
        row["p99_ms_each"] = [r.get("p99_ms") for r in runs]
    if row["downloads"]:
        row["download_MiBps_each"] = [r["download_MiBps"] for r in runs]
    return row


def bench(work: Path) -> list[dict]:
    from bench.run import big_asset
    big_asset(work)
    out, queries = tree(work)
    rows = []
    for workers in WORKERS:
        for downloads in DOWNLOADS:
            server = start_server(work, out, workers)
            try:
                for rate in ([0] if downloads else []) + RATES:
                    runs = [one_run(server, downloads, rate, queries) for _ in range(REPEATS)]
                    rows.append({"workers": workers, **median_run(runs)})
                    print(rows[-1], flush=True)
            finally:
                server.stop()
    for row in rows:
        alone = next((r for r in rows if (r["workers"], r["downloads"]) == (row["workers"], row["downloads"])
                      and not r["offered_rps"]), None)
        if alone and row["download_MiBps"] is not None and alone["download_MiBps"]:
            row["download_vs_no_api"] = round(row["download_MiBps"] / alone["download_MiBps"], 3)
    return rows


if __name__ == "__main__":
    import tempfile
    sys.path.insert(0, str(REPO))
    work = Path(os.environ.get("BENCH_WORK", tempfile.gettempdir())) / "bootstrap-node-bench"
    work.mkdir(parents=True, exist_ok=True)
    rows = bench(work)
    results = REPO / "bench" / "results.json"
    data = json.loads(results.read_text()) if results.exists() else {}
    def key(r: dict) -> tuple:  # a partial run updates only its own rows
        return r["link_Gbps"] or 0, r.get("workers", 1), r["downloads"], r["offered_rps"]
    merged = {key(r): r for r in data.get("streaming", []) + rows}
    data["streaming"] = [merged[k] for k in sorted(merged)]
    from bench.run import this_machine
    data.setdefault("machines", {})["streaming"] = this_machine()
    results.write_text(json.dumps(data, indent=2) + "\n")
