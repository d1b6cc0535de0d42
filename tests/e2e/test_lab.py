"""End to end: real firmware (SeaBIOS, OVMF) PXE-boots through real dnsmasq and our server in
network namespaces, runs the stand-in Flatcar, whose real Ignition applies the install config (and,
for the "installed" root, the final one), executes the install script it was given, and reports
back. Three nodes at once (BIOS, UEFI PXE, UEFI HTTP Boot) plus a machine that is not in cluster.yaml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support import ignition_fs
from tests.support.paths import REPO, SHARED
from tests.unit.test_generate import files_of

sys.path.insert(0, str(REPO / "scripts" / "lab"))
import lab as lab_module  # noqa: E402

NODES = {"cp-1": ("controller", "/dev/vda"), "worker-1": ("worker", "/dev/vda"), "worker-2": ("worker", "/dev/vda")}
# UEFI machines run OVMF's own PXE client (romfile= empty): proxy DHCP sends snponly.efi over TFTP.
# The UEFI HTTP Boot machine runs OVMF's HTTP Boot client only: serve's proxy offer names
# /uefi/snponly.efi, fetched over HTTP, no TFTP at all.
# BIOS machines boot through QEMU's NIC option ROM, which *is* iPXE (Debian's ipxe-qemu): it announces
# itself as iPXE, so the proxy sends it straight to boot.ipxe, and undionly.kpxe is never fetched.
# The undionly.kpxe path is proven with a raw PXE client in tests/root/test_serve_supervise_dnsmasq.py.
BOOT_FILE = {"bios": None, "uefi": "snponly.efi", "uefi-http": "http://10.99.0.2:8080/uefi/snponly.efi"}
TIMEOUT = 600


def between(text: str, marker: str) -> str:
    m = re.search(rf"=== BEGIN {marker} ===\r?\n(.*?)\r?\n=== END {marker} ===", text, re.S)
    assert m, f"no {marker} block on the serial console"
    return m[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def rack():
    if os.geteuid() != 0:
        pytest.skip("the QEMU lab needs root (network namespaces, taps); CI runs it as root")
    if gone := lab_module.missing_tools():
        pytest.skip("the QEMU lab needs: " + ", ".join(gone))
    directory = Path(tempfile.mkdtemp(prefix="bn-e2e-", dir="/tmp"))
    directory.chmod(0o755)
    the_lab = lab_module.Lab(directory=directory, prefix=f"bne{os.getpid() % 10000}")
    try:
        the_lab.up()
        powered = {}
        for machine in lab_module.MACHINES:
            powered[machine.name] = time.time()
            the_lab.boot(machine)
        nodes = [m for m in lab_module.MACHINES if m.name in NODES]
        wait_until(lambda: all(not the_lab.running(m) for m in nodes), TIMEOUT, "the three nodes to install and power off")
        yield the_lab, powered
    finally:
        the_lab.down()
        shutil.rmtree(directory, ignore_errors=True)


def machine(name: str) -> lab_module.Machine:
    return next(m for m in lab_module.MACHINES if m.name == name)


def node_events(the_lab, mac: str) -> list[dict]:
    return [e for e in the_lab.events() if e.get("mac") == mac]


@pytest.mark.parametrize("name", list(NODES))
def test_each_node_walks_the_whole_chain(rack, name):
    the_lab, _ = rack
    m = machine(name)
    events = node_events(the_lab, m.mac)
    kinds = [e["kind"] for e in events]
    # The firmware got the boot file for its kind, from our proxy DHCP and TFTP (or HTTP).
    if m.firmware == "uefi":
        assert any(e.get("detail", {}).get("bootfile") == BOOT_FILE[m.firmware] for e in events), kinds
        assert any(e["kind"] == "tftp" and e["detail"]["file"].endswith(BOOT_FILE[m.firmware]) for e in events)
    elif m.firmware == "uefi-http":
        assert any(e.get("source") == "httpboot" and e["detail"]["bootfile"] == BOOT_FILE[m.firmware]
                   for e in events), kinds
        assert not any(e["kind"] == "tftp" for e in events), kinds
        assert '"GET /uefi/snponly.efi HTTP/1.1" 200 ' in (the_lab.dir / "serve.log").read_text()  # the HTTP fetch
    else:
        assert not any(e["kind"] == "tftp" for e in events), kinds
    # iPXE came back over DHCP with user-class iPXE and was sent to HTTP.
    assert any(e.get("detail", {}).get("bootfile") == "http://10.99.0.2:8080/boot.ipxe" for e in events), kinds
    # Its own script, kernel and initrd, its own install config, its own callback.
    assert any(e["kind"] == "ipxe" and e["detail"]["profile"] == f"{name}-install" for e in events)
    downloads = {e["detail"]["file"].rsplit("/", 1)[1] for e in events if e["kind"] == "boot-asset"}
    assert downloads >= {"flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz"}
    assert any(e["kind"] == "install-ignition" and e["detail"]["group"] == f"{name}-install" for e in events)
    assert [e["kind"] for e in events if e["kind"] in ("installing", "installed")][-1] == "installed"
    assert all(e.get("node") in (name, None, "") for e in events)


@pytest.mark.parametrize("name", list(NODES))
def test_serial_console_shows_its_own_configs(rack, name):
    the_lab, _ = rack
    m = machine(name)
    role, disk = NODES[name]
    serial = the_lab.serial(m)
    hyphens = m.mac.replace(":", "-")
    assert f"ignition.config.url=http://10.99.0.2:8080/ignition?mac={hyphens}" in serial
    install = json.loads(between(serial, "INSTALL IGNITION"))
    assert files_of(install)["/etc/hostname"] == name.encode()
    schema_file = SHARED / "schemas" / "ignition" / "ignition-3.4.0.schema.json"
    if schema_file.exists():
        import jsonschema
        assert list(jsonschema.Draft4Validator(json.loads(schema_file.read_text())).iter_errors(install)) == []
    final = json.loads(between(serial, "FINAL IGNITION"))
    files = files_of(final)
    assert files["/etc/hostname"] == name.encode()
    assert ("/opt/bootstrap-node/kubernetes/pki/ca.key" in files) == (role == "controller")
    installer = between(serial, "FLATCAR-INSTALL")
    assert f"args: -d {disk} -b http://10.99.0.2:8080/assets/flatcar -V 4081.3.6 -i /tmp/final.ign" in installer
    assert "flatcar_production_image.bin.bz2 present" in installer


@pytest.mark.parametrize("name", list(NODES))
def test_the_final_configs_sysexts_are_served_with_their_hashes(rack, name):
    """Every remote file of the final config (the sysexts) answered the stand-in, which streamed it
    through sha512 as Ignition would on first boot; the workers' containerd too, the controller's not."""
    the_lab, _ = rack
    serial = the_lab.serial(machine(name))
    final = json.loads(between(serial, "FINAL IGNITION"))
    remote = {f["path"]: f["contents"] for f in final["storage"]["files"]
              if f["contents"].get("source", "").startswith("http")}
    fetches = between(serial, "FINAL FETCHES").replace("\r", "").splitlines()
    assert sorted(fetches) == sorted(f"fetch: {c['source']} sha512 ok" for c in remote.values())
    sysexts = {path.split("/")[3] for path in remote if path.startswith("/opt/extensions/")}
    assert sysexts == ({"kubernetes", "containerd"} if NODES[name][0] == "worker" else {"kubernetes"})


@pytest.mark.parametrize("name", list(NODES))
def test_real_ignition_wrote_what_both_configs_say(rack, name):
    """The stand-in ran the real Ignition for both stages: the install config on the live system
    (`-platform metal`, ignition.config.url) and the final one on the installed root. What it wrote,
    as the stand-in listed it, is what each config says: files with contents, modes and owners,
    links (the sysexts' in /etc/extensions), units, drop-ins and masks, enablement, core's SSH keys."""
    the_lab, _ = rack
    serial = the_lab.serial(machine(name)).replace("\r", "")
    images = the_lab.assets / "sysext"

    def remote(url: str) -> bytes:
        return (images / url.rsplit("/", 1)[1]).read_bytes()

    for config_block, root_block in (("INSTALL IGNITION", "INSTALL ROOT"), ("FINAL IGNITION", "FINAL ROOT")):
        config = json.loads(between(serial, config_block))
        want = ignition_fs.expected(config, remote)
        seen = ignition_fs.parse_manifest(between(serial, root_block))
        assert len(want) >= 4 and {path: seen.get(path) for path in want} == want, root_block
    final = json.loads(between(serial, "FINAL IGNITION"))
    assert ignition_fs.preset_units(between(serial, "FINAL PRESET")) == ignition_fs.enabled(final)
    links = {p: e[4] for p, e in ignition_fs.parse_manifest(between(serial, "FINAL ROOT")).items()
             if p.startswith("/etc/extensions/") and e[4] != "/dev/null"}
    assert {p.rsplit("/", 1)[1] for p in links} == (
        {"kubernetes.raw", "containerd.raw"} if NODES[name][0] == "worker" else {"kubernetes.raw"})


def test_the_stranger_is_told_why_and_discovered(rack):
    the_lab, _ = rack
    stranger = machine("stranger")
    wait_until(lambda: "no node in cluster.yaml has MAC 52:54:00:aa:bb:99" in the_lab.serial(stranger), 120,
               "the stranger's explanation on its (UEFI) console")
    assert any(e["kind"] == "discovered" for e in node_events(the_lab, stranger.mac))
    out = subprocess.run([sys.executable, "-m", "app", "--config", str(the_lab.config), "--output",
                          str(the_lab.output), "discover"], cwd=REPO, capture_output=True, text=True)
    assert 'mac: "52:54:00:aa:bb:99"' in out.stdout
    the_lab.power_off(stranger)


@pytest.mark.parametrize("name", ["cp-1", "worker-1"])
def test_next_pxe_boot_of_an_installed_node_boots_locally(rack, name):
    the_lab, _ = rack
    m = machine(name)
    before = len([e for e in node_events(the_lab, m.mac) if e["kind"] == "local-boot"])
    the_lab.boot(m)
    try:
        wait_until(lambda: len([e for e in node_events(the_lab, m.mac) if e["kind"] == "local-boot"]) > before,
                   180, f"{name}'s second PXE boot to be answered with local boot")
        assert sum(e["kind"] == "install-ignition" for e in node_events(the_lab, m.mac)) == 1  # no reinstall
        if m.firmware == "uefi":
            wait_until(lambda: f"{name} is installed; booting from its disk" in the_lab.serial(m), 60,
                       "the local-boot message on the UEFI console")
    finally:
        the_lab.power_off(m)


def test_report_boot_timings(rack):
    """Power-on to install Ignition fetched, per machine, and how much of it the appliance spent
    answering (from serve's access log, %Tf). Written to build/e2e-timings.json for the notes."""
    the_lab, powered = rack
    log = (the_lab.dir / "serve.log").read_text()
    ip_mac = {e["detail"]["ip"]: e["mac"] for e in the_lab.events()
              if e["kind"] in ("dhcp", "ipxe") and e.get("mac") and e.get("detail", {}).get("ip")}
    spent: dict[str, float] = {}
    for ip, seconds in re.findall(r'access: (\d+\.\d+\.\d+\.\d+) "[A-Z]+ [^"]*" \d+ \d+ ([\d.]+)', log):
        spent[ip_mac.get(ip, ip)] = spent.get(ip_mac.get(ip, ip), 0.0) + float(seconds)
    for e in the_lab.events():  # kernel and initrd: the time spent sending them, recorded per download
        if e["kind"] == "boot-asset":
            spent[e["mac"]] = spent.get(e["mac"], 0.0) + e["detail"]["seconds"]
    report = {}
    for name in NODES:
        m = machine(name)
        fetched = next(e["ts"] for e in node_events(the_lab, m.mac) if e["kind"] == "install-ignition")
        from datetime import datetime
        at = datetime.fromisoformat(fetched.replace("Z", "+00:00")).timestamp()
        report[name] = {"firmware": m.firmware, "power_on_to_ignition_s": round(at - powered[name], 1),
                        "appliance_http_s": round(spent.get(m.mac, 0.0), 3)}
        assert 0 < report[name]["power_on_to_ignition_s"] < TIMEOUT
    (REPO / "build").mkdir(exist_ok=True)
    (REPO / "build" / "e2e-timings.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
