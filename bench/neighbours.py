"""The neighbour lookup each boot request makes (app/serve/neighbours.py), on segments of 100, 1,000 and
4,000 machines: rtnetlink's single-entry questions against reading /proc/net/arp, both in the same
process in a network namespace whose table holds that many entries (permanent, so that the kernel's
garbage collection cannot shrink it mid-run). Root: run by `make bench-storm`. Reported as time per
lookup and their ratio; never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import timeit
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZES = [int(n) for n in os.environ.get("BENCH_NEIGHBOURS", "100,1000,4000").split(",")]
NS = f"bn-neigh-{os.getpid()}"


def machine(i: int) -> tuple[str, str]:
    return f"10.{200 + i // 62500}.{i // 250 % 250}.{i % 250 + 2}", f"52:54:60:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def measure(entries: int) -> dict:
    """Inside the namespace: microseconds per lookup of a machine in the middle of the table."""
    sys.path.insert(0, str(REPO))
    from app.serve.kernel import neighbours
    ip, mac = machine(entries // 2)
    assert neighbours.link_mac(ip) == neighbours.arp_lookup(ip) == mac, "the two lookups disagree"
    def per_lookup(fn) -> float:  # the best of 3 runs of at least 0.2 s each
        timer = timeit.Timer(lambda: fn(ip))
        number, _ = timer.autorange()
        return min(timer.repeat(repeat=3, number=number)) / number * 1e6
    netlink, text = per_lookup(neighbours.link_mac), per_lookup(neighbours.arp_lookup)
    return {"entries": entries, "netlink_us": round(netlink, 1), "proc_net_arp_us": round(text, 1),
            "proc_over_netlink": round(text / netlink, 1), "netlink_used": neighbours._NETLINK.usable}


def sh(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=True, capture_output=True, text=True, **kw)


def bench() -> list[dict]:
    rows = []
    for entries in SIZES:
        sh("ip", "netns", "add", NS)
        try:
            batch = ["link add nb0 type veth peer name nb1", "link set nb0 up", "link set nb1 up",
                     "addr add 10.200.0.1/10 dev nb0"]
            batch += [f"neigh replace {ip} lladdr {mac} dev nb0 nud permanent" for ip, mac in map(machine, range(entries))]
            sh("ip", "-n", NS, "-batch", "-", input="\n".join(batch) + "\n")
            out = sh("ip", "netns", "exec", NS, sys.executable, __file__, "--measure", str(entries), timeout=300)
            rows.append(json.loads(out.stdout))
            print(rows[-1], flush=True)
        finally:
            subprocess.run(["ip", "netns", "del", NS], check=False)
    return rows


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure"]:
        print(json.dumps(measure(int(sys.argv[2]))))
        sys.exit(0)
    if os.geteuid() != 0:
        sys.exit("bench/neighbours.py needs root (a network namespace with its own neighbour table)")
    sys.path.insert(0, str(REPO))
    from bench.run import this_machine
    rows = bench()
    results = REPO / "bench" / "results.json"
    data = json.loads(results.read_text()) if results.exists() else {}
    data["neighbours"] = rows
    data.setdefault("machines", {})["neighbours"] = this_machine()
    results.write_text(json.dumps(data, indent=2) + "\n")
