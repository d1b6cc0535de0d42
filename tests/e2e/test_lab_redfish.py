"""End to end through real BMC servers: the lab's machines are libvirt domains behind sushy-tools'
Redfish emulator (libvirt driver) or virtualbmc (IPMI), and only `bootstrap-node power on` starts
them. They PXE-boot through real dnsmasq and our server, install (stand-in Flatcar) and report
`installed`; then the watcher `init` runs points each one's next boots at its disk (the emulators
keep a one-time override as permanent, so without that they would PXE again)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_lab import wait_until
from tests.support.paths import REPO

sys.path.insert(0, str(REPO / "scripts" / "lab"))
import lab as lab_module  # noqa: E402
import lab_bmc  # noqa: E402

NODES = ["cp-1", "worker-1", "worker-2"]
TIMEOUT = 240
# The disk override as each BMC reads it back: virtualbmc's flags always say "next boot only".
DISK_OVERRIDE = {"redfish": "hdd (continuous)", "ipmi": "disk (once)"}


def bootstrap_node(the_lab, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", "--config", str(the_lab.config), "--output",
                           str(the_lab.output), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def installed_at(the_lab) -> dict[str, str]:
    return {e["node"]: e["ts"] for e in the_lab.events() if e.get("kind") == "installed" and e.get("node")}


@pytest.fixture(scope="module", params=["redfish", "ipmi"])
def rack(request):
    power = request.param
    if os.geteuid() != 0:
        pytest.skip(f"the {power} lab needs root (network namespaces, libvirtd)")
    if gone := lab_module.missing_tools() + lab_bmc.missing(power):
        pytest.skip(f"the {power} lab needs: " + ", ".join(gone))
    if lab_bmc.libvirt_answers():
        pytest.skip(f"a libvirtd already runs on this host ({lab_bmc.SOCKET}); the lab starts its own")
    from app.cluster import load_cluster
    from app.power.watch import LogTail, watch_installs

    directory = Path(tempfile.mkdtemp(prefix=f"bn-e2e-{power}-", dir="/tmp"))
    directory.chmod(0o755)
    the_lab = lab_module.Lab(directory=directory, prefix=f"bnr{os.getpid() % 10000}", power=power)
    stop, said = threading.Event(), []
    try:
        the_lab.up()
        cluster, _ = load_cluster(the_lab.config)
        events = the_lab.output / "events.jsonl"
        watcher = threading.Thread(target=watch_installs, args=(cluster, events, stop, said.append),
                                   kwargs={"tail": LogTail(events), "poll": 0.5}, daemon=True)
        watcher.start()
        assert not any(the_lab.running(m) for m in the_lab.nodes), "the lab itself must not start a VM"
        started = time.time()
        powered = bootstrap_node(the_lab, "power", "on", "--timeout", "60")
        on_after = time.time() - started
        assert powered.returncode == 0, powered.stdout + powered.stderr
        wait_until(lambda: set(installed_at(the_lab)) >= set(NODES) and len(said) >= len(NODES), TIMEOUT,
                   "every node installed and pointed at its disk")
        wait_until(lambda: not any(the_lab.running(m) for m in the_lab.nodes), 60,
                   "the installed machines to power off (the stand-in reboots; the domain ends)")
        yield the_lab, powered.stdout, said, started, on_after
    finally:
        stop.set()
        the_lab.down()
        shutil.rmtree(directory, ignore_errors=True)


def test_power_on_went_through_the_bmc(rack):
    _, out, _, _, _ = rack
    for name in NODES:
        assert f"{name}: network boot once, powering on" in out and f"{name}: on" in out


@pytest.mark.parametrize("name", NODES)
def test_each_node_pxe_booted_and_installed(rack, name):
    the_lab, _, _, _, _ = rack
    mac = next(m.mac for m in the_lab.nodes if m.name == name)
    events = [e for e in the_lab.events() if e.get("mac") == mac]
    kinds = [e["kind"] for e in events]
    assert any(e.get("detail", {}).get("bootfile") == "http://10.99.0.2:8080/boot.ipxe" for e in events), kinds
    assert any(e["kind"] == "ipxe" and e["detail"]["profile"] == f"{name}-install" for e in events), kinds
    assert any(e["kind"] == "install-ignition" and e["detail"]["group"] == f"{name}-install" for e in events)
    assert [k for k in kinds if k in ("installing", "installed")][-1] == "installed"
    assert f"ignition.config.url=http://10.99.0.2:8080/ignition?mac={mac.replace(':', '-')}" in the_lab.serial(
        next(m for m in the_lab.nodes if m.name == name))


def test_after_installed_the_next_boot_is_the_disk(rack):
    the_lab, _, said, _, _ = rack
    assert sorted(s.split()[0] for s in said) == sorted(NODES), said
    assert all(s.endswith(f"boot override now {DISK_OVERRIDE[the_lab.power]}") for s in said), said
    status = bootstrap_node(the_lab, "power", "status")
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line for line in status.stdout.splitlines()}
    for name in NODES:
        assert re.search(rf"power off\s+boot override {re.escape(DISK_OVERRIDE[the_lab.power])}", rows[name]), status.stdout
        assert first_boot_device(lab_bmc.virsh("dumpxml", name)) == "disk"


def first_boot_device(xml: str) -> str:
    """What libvirt boots first: the device with <boot order='1'/> (the emulator writes per-device
    orders), else the first <os><boot dev=...>."""
    import xml.etree.ElementTree as ET
    domain = ET.fromstring(xml)
    for device in domain.find("devices"):
        if (boot := device.find("boot")) is not None and boot.get("order") == "1":
            return device.tag if device.tag != "disk" else device.get("device", "disk")
    first = domain.find("os/boot")
    return {"hd": "disk", "network": "interface"}.get(first.get("dev"), first.get("dev")) if first is not None else ""


def test_report_power_on_and_install_times(rack):
    """`power on` returning (all three on) and power-on to `installed` per node, for the notes."""
    the_lab, _, _, started, on_after = rack
    from app.events import epoch
    report = {"power_on_command_s": round(on_after, 1),
              **{f"{name}_power_on_to_installed_s": round(epoch(ts) - started, 1)
                 for name, ts in installed_at(the_lab).items() if name in NODES}}
    assert all(0 < v < TIMEOUT for v in report.values())
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build" / f"e2e-{the_lab.power}-timings.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
