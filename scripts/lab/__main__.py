"""scripts/lab: a virtual rack for bootstrap-node (root). `python3 scripts/lab up|boot|status|down|run`.

    up      namespaces, bridge, site DHCP, stand-in Flatcar artifacts, generate, serve
    boot    power on the lab's machines (all, or the names given)
    status  the appliance's view of every node (bootstrap-node status)
    down    stop everything the lab started and remove its namespaces
    run     up, boot all, show live progress until every node is installed, then down

LAB_POWER=redfish|ipmi makes the machines libvirt domains behind a real BMC server (sushy-tools'
Redfish emulator, or virtualbmc for IPMI; see lab_bmc.py) and writes their `bmc:` entries into the
lab's own cluster.yaml (<lab dir>/cluster.yaml); the lab then starts no VM: `boot` and `run` call
`bootstrap-node power on`, which sets a one-time PXE boot and powers each node on through its BMC.

LAB_ASSETS=DIR uses real Flatcar artifacts from DIR instead of stand-ins (then use LAB_ACCEL=kvm,
LAB_MEMORY_MB=3072 or more, as Flatcar's PXE image needs at least 3 GB, and LAB_DISK_GB=10 to give
every machine a disk, /dev/vda, to install to).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def _with_the_dependencies() -> None:
    """`python3 scripts/lab …` from a Python without the app's dependencies (typer, aiohttp, …) runs
    again with the checkout's .venv (`make venv`), which has them: the lab calls the app."""
    try:
        import typer  # noqa: F401
        return
    except ImportError:
        pass
    venv = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"
    if venv.exists() and Path(sys.executable) != venv:
        os.execv(venv, [str(venv), *sys.argv])
    sys.exit(f"scripts/lab needs the app's dependencies, which {sys.executable} lacks: run `make venv` first")


_with_the_dependencies()
sys.path.insert(0, str(Path(__file__).resolve().parent))
from lab import MACHINES, REPO, Lab, LabError  # noqa: E402
from lab_bmc import BmcError  # noqa: E402

sys.path.insert(0, str(REPO))


def lab() -> Lab:
    assets = os.environ.get("LAB_ASSETS")
    return Lab(assets=Path(assets).resolve() if assets else None, power=os.environ.get("LAB_POWER") or "qemu",
               memory_mb=int(os.environ.get("LAB_MEMORY_MB", "512")), accel=os.environ.get("LAB_ACCEL", "tcg"))


def power_on(the_lab: Lab, names: list[str]) -> int:
    """Through the BMCs, as an operator would: `bootstrap-node power on`."""
    return subprocess.run([sys.executable, "-m", "app", "--config", str(the_lab.config), "--output",
                           str(the_lab.output), "power", "on", *names], cwd=REPO).returncode


def boot(the_lab: Lab, names: list[str]) -> None:
    if the_lab.power != "qemu":
        if power_on(the_lab, names) != 0:
            raise LabError("bootstrap-node power on failed (above)")
        return
    memory = int(os.environ.get("LAB_MEMORY_MB", "512"))
    accel = os.environ.get("LAB_ACCEL", "tcg")
    disk_gb = int(os.environ.get("LAB_DISK_GB", "0"))
    for machine in MACHINES:
        if not names or machine.name in names:
            the_lab.boot(machine, memory_mb=memory, accel=accel, disk_gb=disk_gb)
            print(f"powered on {machine.name} ({machine.firmware}, {machine.mac})")


def status(the_lab: Lab) -> int:
    return subprocess.run([sys.executable, "-m", "app", "--config", str(the_lab.config), "--output",
                           str(the_lab.output), "status"], cwd=REPO).returncode


def watch_installs(the_lab: Lab, stop: threading.Event) -> threading.Thread:
    """What `init` does for BMC-powered nodes: once one reports installed, its next boots go to disk."""
    from app.cluster import load_cluster
    from app.power.watch import LogTail
    from app.power.watch import watch_installs as watch

    cluster, _ = load_cluster(the_lab.config)
    events = the_lab.output / "events.jsonl"
    tail = LogTail(events)
    thread = threading.Thread(target=watch, args=(cluster, events, stop, print), kwargs={"tail": tail}, daemon=True)
    thread.start()
    return thread


def run_all(the_lab: Lab, timeout: float = 900) -> int:
    the_lab.up()
    stop = threading.Event()
    try:
        if the_lab.power != "qemu":
            watch_installs(the_lab, stop)
        boot(the_lab, [])
        nodes = [m for m in MACHINES if m.name != "stranger"]
        if watch(the_lab, lambda: all_installed(the_lab, nodes), timeout):
            print("every node installed; " + ("the stranger is listed by `bootstrap-node discover`"
                                              if the_lab.power == "qemu" else "its BMC has no stranger"))
            return 0
        print(f"not every node installed within {timeout:.0f}s; serial logs are in {the_lab.dir}")
        return 1
    finally:
        stop.set()
        the_lab.down()


def all_installed(the_lab: Lab, nodes) -> bool:
    installed = {e.get("node") for e in the_lab.events() if e.get("kind") == "installed"}
    return all(m.name in installed for m in nodes)


def watch(the_lab: Lab, done, timeout: float) -> bool:
    """`status --watch`'s display until `done()`: a live table on a terminal, and in a log (CI,
    `make lab > file`) one line per change instead of the whole table every few seconds."""
    from app.cli.common import known_nodes
    from app.cli.progress import Display, status_lines, status_renderable
    from app.events import EventLog
    from app.status.view import build

    log = EventLog(the_lab.output, known_nodes(the_lab.config))
    deadline = time.monotonic() + timeout
    with Display() as display:
        while time.monotonic() < deadline:
            log.follow(external_only=False)
            view = build(log, the_lab.assets)
            display.show(lambda view=view: status_renderable(view, "make lab"), status_lines(view))
            if done():
                return True
            time.sleep(2)
    return False


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    the_lab = lab()
    try:
        match argv[0]:
            case "up":
                the_lab.up()
                print(f"lab up: appliance at http://10.99.0.2:8080 in namespace {the_lab.appl}; state in {the_lab.dir}")
                if the_lab.power != "qemu":
                    print(f"machines powered through {the_lab.power}: bootstrap-node --config {the_lab.config} "
                          f"--output {the_lab.output} power on|off|status")
            case "boot":
                boot(the_lab, argv[1:])
            case "status":
                return status(the_lab)
            case "down":
                the_lab.down()
                print("lab down")
            case "run":
                return run_all(the_lab)
            case other:
                print(f"unknown command {other!r}\n{__doc__}", file=sys.stderr)
                return 2
    except (LabError, BmcError) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
