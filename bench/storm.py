"""The boot storm (root only): N machines power on within a second of each other and each walks the
whole chain against the real appliance — `bootstrap-node serve` with its dnsmasq (proxy DHCP + TFTP)
in one network namespace, each machine in its own (bench/rack.py, bench/firmware.py). Reports the
time until all N have their install config, per-step p50/p99, failures, retries, and the CPU (and
the time waiting for one) of serve, of dnsmasq and of the simulator, whose machines run from
BENCH_STORM_PROCS processes (bench/shards.py). Not a test: numbers are reported, never asserted.

The cluster has TREE_NODES nodes (generated once); the first N of them boot. Half the machines are
BIOS (undionly.kpxe over TFTP), half UEFI (the cluster's pxe.uefi_loader: snponly.efi by default). Kernel and initrd are stand-ins of
BENCH_KERNEL_MIB and BENCH_INITRD_MIB (the real images' transfer time is line-rate arithmetic; see
README "Performance")."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import firmware, scale, shards
from bench.rack import Rack

REPO = Path(__file__).resolve().parent.parent
SIZES = [int(n) for n in os.environ.get("BENCH_STORM", "50,200,1000").split(",")]
TREE_NODES = int(os.environ.get("BENCH_STORM_TREE", "1000"))
KERNEL_MIB = float(os.environ.get("BENCH_KERNEL_MIB", "1"))
INITRD_MIB = float(os.environ.get("BENCH_INITRD_MIB", "4"))
# As bench/capacity.py: BENCH_NICE=-10 runs serve, dnsmasq and the simulator ahead of the rest of a
# shared machine (0, the default here, shares it evenly; each row records which).
NICE = int(os.environ.get("BENCH_NICE", "0"))
DEADLINE = float(os.environ.get("BENCH_STORM_DEADLINE", "110"))  # seconds; unfinished machines count
POWER_ON_SPREAD = 1.0  # seconds over which the machines power on
# Simulator processes the machines are spread over; "1,2" runs each size with each, interleaved.
PROCS = shards.procs_setting(os.environ.get("BENCH_STORM_PROCS", str(shards.DEFAULT_PROCS)))
PROBE = os.environ.get("BENCH_STORM_PROBE", "0") == "1"  # each TFTP block's wait split at the socket
APPLIANCE_IP, CIDR = "10.77.0.2", "10.77.0.0/16"
STEPS = ["pxe-dhcp", "tftp", "ipxe-dhcp", "boot.ipxe", "ipxe", "kernel", "initrd", "ignition", "installed"]


def prepare(work: Path) -> tuple[Path, Path, dict]:
    """Assets (stand-ins), cluster.yaml and the generated tree, made once per tree size."""
    config = scale.cluster(TREE_NODES, cidr=CIDR, bootstrap_ip=APPLIANCE_IP, tag=0x40)
    config["bootstrap"]["interface"] = "eth0"
    version = str(config["cluster"]["flatcar_version"])
    assets = work / "storm-assets"
    flatcar = assets / "flatcar" / version
    flatcar.mkdir(parents=True, exist_ok=True)
    for name, mib in (("flatcar_production_pxe.vmlinuz", KERNEL_MIB), ("flatcar_production_pxe_image.cpio.gz",
                                                                       INITRD_MIB)):
        path = flatcar / name
        if not path.exists() or path.stat().st_size != int(mib * (1 << 20)):
            path.write_bytes(os.urandom(int(mib * (1 << 20))))
    out = work / f"storm-tree-{TREE_NODES}"
    path = work / f"storm-cluster-{TREE_NODES}.yaml"
    if not (out / "matchbox" / "groups").is_dir():
        scale.write_cluster(path, config)
        scale.generate(path, out, assets, Path("/usr/lib/ipxe"), REPO / "templates")
    # The A/B of the fix: BENCH_STORM_TFTP_MAX=50 (dnsmasq's default) serves with that; unset, the
    # template's own value is put back into the generated conf.
    template = (REPO / "templates" / "dnsmasq.conf.tmpl").read_text()
    wanted = os.environ.get("BENCH_STORM_TFTP_MAX") or re.search(r"(?m)^tftp-max=(\d+)$", template)[1]
    conf = (out / "dnsmasq.conf").resolve()
    conf.write_text(re.sub(r"(?m)^tftp-max=\d+$", f"tftp-max={int(wanted)}", conf.read_text()))
    for d in (work, out, out / "tftp"):
        os.chmod(d, 0o755)  # dnsmasq drops to nobody and must reach tftp/
    return path, out, config


class Appliance:
    """`bootstrap-node serve` in the appliance's namespace, its own session (dnsmasq under it)."""

    def __init__(self, rack: Rack, config: Path, out: Path, assets: Path, log: Path):
        (out / "events.jsonl").unlink(missing_ok=True)
        self.out, self.netns = out, rack.appliance
        with log.open("wb") as f:
            self.proc = subprocess.Popen(["ip", "netns", "exec", rack.appliance, sys.executable, "-m", "app",
                                          "--config", str(config), "--output", str(out), "serve", "--assets",
                                          str(assets), "--skip-preflight"], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not any(e.get("kind") == "dnsmasq-ready" for e in self.events()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start: " + log.read_text()[-2000:])
            time.sleep(0.2)

    def events(self) -> list[dict]:
        try:
            return [json.loads(line) for line in (self.out / "events.jsonl").read_text().splitlines() if line]
        except FileNotFoundError:
            return []

    def cpu(self) -> dict[str, float]:
        """CPU seconds of serve and of dnsmasq (every process of the session, by what it is)."""
        tick, totals = os.sysconf("SC_CLK_TCK"), {"serve": 0.0, "serve_sys": 0.0, "dnsmasq": 0.0,
                                                   "dnsmasq_sys": 0.0, "serve_runqueue": 0.0,
                                                   "dnsmasq_runqueue": 0.0}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                name, fields = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
                fields = fields.split()
            except (OSError, IndexError):
                continue
            if int(fields[3]) == self.proc.pid and name in ("dnsmasq", "python", "python3"):
                cmdline = (stat.parent / "cmdline").read_bytes()
                kind = "dnsmasq" if name == "dnsmasq" else None if b"guardian" in cmdline else "serve"
                if kind:
                    totals[kind] += (int(fields[11]) + int(fields[12])) / tick
                if kind:
                    totals[f"{kind}_sys"] += int(fields[12]) / tick
                    totals[f"{kind}_runqueue"] += shards.runqueue_s(stat.parent.name)
        return totals

    def udp(self) -> dict[str, int]:
        """The appliance namespace's UDP counters: datagrams in, and those dropped on a full socket."""
        lines = subprocess.run(["ip", "netns", "exec", self.netns, "cat", "/proc/net/snmp"], capture_output=True,
                               text=True, check=False).stdout.splitlines()
        names, values = [line.split()[1:] for line in lines if line.startswith("Udp:")][:2]
        counters = dict(zip(names, map(int, values), strict=False))
        return {k: counters.get(k, 0) for k in ("InDatagrams", "RcvbufErrors", "InErrors")}

    def drops_by_port(self) -> dict[str, int]:
        """Datagrams each listening UDP socket of the appliance dropped (full receive buffer), by local
        port: which of dnsmasq's (67, 4011, 69) and serve's HTTP Boot listener (also 67) lost them."""
        lines = subprocess.run(["ip", "netns", "exec", self.netns, "cat", "/proc/net/udp"], capture_output=True,
                               text=True, check=False).stdout.splitlines()[1:]
        drops: dict[str, int] = {}
        for line in lines:
            fields = line.split()
            port, inode, dropped = int(fields[1].split(":")[1], 16), fields[9], int(fields[12])
            if dropped:
                key = f"{port} ({self._owner(inode)})"
                drops[key] = drops.get(key, 0) + dropped
        return drops

    def _owner(self, inode: str) -> str:
        for fd in Path("/proc").glob("[0-9]*/fd/*"):
            with contextlib.suppress(OSError):
                if os.readlink(fd) == f"socket:[{inode}]":
                    return (fd.parent.parent / "comm").read_text().strip()
        return "?"

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def storm(rack: Rack, n: int, procs: int) -> tuple[list[firmware.Machine], float, dict]:
    """N machines from `procs` simulator processes (bench/shards.py), powering on over POWER_ON_SPREAD."""
    def make(i: int) -> firmware.Machine:
        return firmware.Machine(i, rack.macs[i], rack.ips[i], rack.machine_ns(i), "uefi" if i % 2 else "bios")

    return shards.run(n, procs, make, APPLIANCE_IP, POWER_ON_SPREAD, DEADLINE, PROBE)


def tftp_max(out: Path) -> int | None:
    found = re.search(r"(?m)^tftp-max=(\d+)$", (out / "dnsmasq.conf").read_text())
    return int(found[1]) if found else None


def uefi_bootfile(out: Path) -> dict:
    """What x86-64 UEFI machines are told to chainload over TFTP (the cluster's pxe.uefi_loader), and its size."""
    found = re.search(r'(?m)^pxe-service=tag:!ipxe,X86-64_EFI,"[^"]*",(\S+)$', (out / "dnsmasq.conf").read_text())
    name = found[1] if found else None
    path = out / "tftp" / name if name else None
    return {"file": name, "bytes": path.stat().st_size if path and path.is_file() else None}


def pct(values: list[float], q: float) -> float | None:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 3) if values else None


def report(n: int, machines: list[firmware.Machine], wall: float, cpu: dict, events: list[dict]) -> dict:
    got_config = [m.install_config_at for m in machines if m.install_config_at is not None]
    errors: dict[str, int] = {}
    for m in machines:
        if m.error:
            key = m.error.split(":", 2)[:2]
            errors[":".join(key)] = errors.get(":".join(key), 0) + 1
    steps = {s: {"p50_s": pct([m.steps[s] for m in machines if s in m.steps], 0.5),
                 "p99_s": pct([m.steps[s] for m in machines if s in m.steps], 0.99),
                 "retries": sum(m.retries.get(s, 0) for m in machines)} for s in STEPS}
    for fw in ("bios", "uefi"):
        steps[f"tftp-{fw}"] = {"p50_s": pct([m.steps["tftp"] for m in machines if fw == m.firmware
                                             and "tftp" in m.steps], 0.5),
                               "p99_s": pct([m.steps["tftp"] for m in machines if fw == m.firmware
                                             and "tftp" in m.steps], 0.99)}
    alerts: dict[str, int] = {}
    for e in events:
        if e.get("kind") == "alert":
            reason = e.get("detail", {}).get("reason", "?")
            alerts[reason] = alerts.get(reason, 0) + 1
    return {"machines": n, "tree_nodes": TREE_NODES,  "kernel_MiB": KERNEL_MIB, "initrd_MiB": INITRD_MIB,
            "all_install_configs_s": round(max(got_config), 2) if len(got_config) == n else None,
            "install_configs": len(got_config), "installed": sum(m.done_at is not None for m in machines),
            "wall_s": round(wall, 2), "failures": errors, "steps": steps, "alerts": alerts,
            "serve_cpu_s": round(cpu["serve"], 2), "dnsmasq_cpu_s": round(cpu["dnsmasq"], 2),
            "dnsmasq_sys_cpu_s": round(cpu["dnsmasq_sys"], 2), "serve_sys_cpu_s": round(cpu["serve_sys"], 2),
            "serve_runqueue_s": round(cpu["serve_runqueue"], 2), "dnsmasq_runqueue_s": round(cpu["dnsmasq_runqueue"], 2),
            "load1_after": round(os.getloadavg()[0], 2), "nice": os.nice(0)}


NEIGH = "/proc/sys/net/ipv4/neigh/default/gc_thresh{}"


@contextlib.contextmanager
def neighbour_room(entries: int):
    """The kernel's neighbour (ARP) table is shared by every namespace and, by default, refuses new
    entries past gc_thresh3 = 1024 and collects aggressively past gc_thresh2 = 512. A rack of N
    machines needs N entries on the appliance (and here, N more: one in each machine's namespace).
    Raised for the storm, put back after; `table_fulls` counts what it still refused."""
    old = [Path(NEIGH.format(i)).read_text().strip() for i in (1, 2, 3)]
    wanted = [max(int(o), v) for o, v in zip(old, (entries, entries * 2, entries * 4), strict=True)]
    try:
        for i, value in zip((1, 2, 3), wanted, strict=True):
            Path(NEIGH.format(i)).write_text(str(value))
        yield
    finally:
        for i, value in zip((1, 2, 3), old, strict=True):
            Path(NEIGH.format(i)).write_text(value)


RMEM_DEFAULT = Path("/proc/sys/net/core/rmem_default")


@contextlib.contextmanager
def receive_buffers(size: int):
    """A socket's default receive buffer (212,992 bytes) queues about 90 DHCP datagrams; a rack
    powering on at once sends its DISCOVERs and 4011 requests faster than dnsmasq's one thread reads
    them, the rest are dropped (`RcvbufErrors`) and each such machine waits 4 s or more to retry.
    dnsmasq has no option for its sockets' buffers and the setting is not per network namespace:
    BENCH_STORM_RMEM=1 raises it machine-wide for the storm and puts it back after."""
    old = RMEM_DEFAULT.read_text().strip()
    try:
        RMEM_DEFAULT.write_text(str(max(int(old), size)))
        yield
    finally:
        RMEM_DEFAULT.write_text(old)


def arp_table_fulls() -> int:
    shown = subprocess.run(["ip", "-s", "ntable", "show", "name", "arp_cache"], capture_output=True, text=True,
                           check=False).stdout
    return sum(int(word.split()[1]) for word in shown.split("\n") for word in [word.strip()]
               if word.startswith("table_fulls"))


def main() -> int:
    if os.geteuid() != 0:
        print("the boot storm needs root (network namespaces, ports 67/69/4011)")
        return 1
    import tempfile
    if NICE:
        os.nice(NICE)  # inherited by serve and its dnsmasq
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(os.environ.get("BENCH_WORK", tempfile.gettempdir())) / "bootstrap-node-bench"
    work.mkdir(parents=True, exist_ok=True)
    config_path, out, config = prepare(work)
    nodes = config["nodes"][:max(SIZES)]
    rack = Rack("bnstorm", [n["mac"] for n in nodes], [n["ip"] for n in nodes], APPLIANCE_IP)
    rows = []
    room = neighbour_room(2 * max(SIZES) + 256) if os.environ.get("BENCH_STORM_NEIGH", "1") == "1" \
        else contextlib.nullcontext()
    buffers = receive_buffers(4 << 20) if os.environ.get("BENCH_STORM_RMEM", "0") == "1" else contextlib.nullcontext()
    try:
        room.__enter__()
        buffers.__enter__()
        rack.up()
        filtered = os.environ.get("BENCH_STORM_FILTER", "1") == "1" and rack.filter_broadcasts()
        for n, procs in [(n, procs) for n in SIZES for procs in PROCS]:
            rack.flush_neighbours()
            appliance = Appliance(rack, config_path, out, work / "storm-assets", work / f"storm-serve-{n}.log")
            try:
                load_before = round(os.getloadavg()[0], 2)
                cpu0, udp0, fulls0 = appliance.cpu(), appliance.udp(), arp_table_fulls()
                machines, wall, simulator = storm(rack, n, procs)
                cpu1, udp1 = appliance.cpu(), appliance.udp()
                row = report(n, machines, wall, {k: cpu1[k] - cpu0[k] for k in cpu0}, appliance.events())
                row.update(simulator, load1_before=load_before)
                row["appliance_udp"] = {k: udp1[k] - udp0[k] for k in udp0}
                row["appliance_udp_drops_by_port"] = appliance.drops_by_port()
                row["dhcp_broadcasts_filtered_at_switch"] = filtered
                row["switch"] = "broadcasts readdressed at ingress" if filtered else "floods"
                row["ipxe_http"] = "pooled keep-alive connection"
                row["tftp_max"] = tftp_max(out)
                row["uefi_bootfile"] = uefi_bootfile(out)
                row["arp_table_fulls"] = arp_table_fulls() - fulls0
                row["neigh_gc_thresh3"] = int(Path(NEIGH.format(3)).read_text())
                row["rmem_default"] = int(RMEM_DEFAULT.read_text())
            finally:
                appliance.stop()
            rows.append(row)
            print(json.dumps(row), flush=True)
    finally:
        rack.down()
        buffers.__exit__(None, None, None)
        room.__exit__(None, None, None)
    results = REPO / "bench" / "results.json"
    data = json.loads(results.read_text()) if results.exists() else {}
    key = "storm" if not os.environ.get("BENCH_STORM_TFTP_MAX") else "storm_tftp_max_" + os.environ["BENCH_STORM_TFTP_MAX"]
    key += "_probe" if PROBE else ""  # the probe's syscall per block is the simulator's CPU too
    # A partial run updates: this run's rows replace the stored ones of the same sizes and process
    # count, and a size run more than once (BENCH_STORM=1000,1000,1000) keeps every repeat.
    kept = [row for row in data.get(key, []) if (row["machines"], row.get("procs")) not in
            {(n, procs) for n in SIZES for procs in PROCS}]
    data[key] = sorted(kept + rows, key=lambda row: (row["machines"], row.get("procs") or 0))
    from bench.run import this_machine
    data.setdefault("machines", {})[key] = this_machine()
    results.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
