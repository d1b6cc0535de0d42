"""The real dnsmasq child answering real PXE DHCP in a network namespace, TFTP fetched with tftpy,
and the supervisor: a killed dnsmasq is restarted, SIGTERM leaves no child behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.root.netns import Pair, require_root_tools, sh
from tests.support.assets import serve_options
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import wait_for
from tests.unit.test_pxe_loader import with_node_setting

SERVER_IP, CLIENT_IP = "10.231.0.2", "10.231.0.50"
IPXE_DIR = Path("/usr/lib/ipxe")


FALLBACK_MAC = "52:54:00:00:00:22"  # worker-2: `pxe: {uefi_loader: ipxe}`, for firmware whose SNP is broken


def cluster_yaml(tmp: Path) -> Path:
    text = with_node_setting(EXAMPLE.read_text(), "worker-2", "pxe: {uefi_loader: ipxe}")
    text = (text.replace("10.0.0.", "10.231.0.").replace("interface: eth0", "interface: srv0")
            .replace("api_server_name: api.lab.example.com", ""))
    path = tmp / "cluster.yaml"
    path.write_text(text)
    return path


def events(out: Path) -> list[dict]:
    path = out / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def tmp_path(tmp_path_factory):
    """dnsmasq drops to user nobody, which must reach tftp/: pytest's own tmp dirs are 0700."""
    import shutil
    import tempfile
    path = Path(tempfile.mkdtemp(prefix="bn-root-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def appliance(tmp_path):
    require_root_tools("dnsmasq")
    pytest.importorskip("scapy", reason="needs scapy for the PXE client probe (test extra)")
    if not (IPXE_DIR / "undionly.kpxe").exists():
        pytest.skip("needs Debian's ipxe package (/usr/lib/ipxe/undionly.kpxe)")
    config = cluster_yaml(tmp_path)
    out = tmp_path / "output"
    gen = subprocess.run([sys.executable, "-m", "app", "--config", str(config), "--output", str(out),
                          "--templates", "/nonexistent", "generate", "--ipxe-dir", str(IPXE_DIR)],
                         cwd=REPO, capture_output=True, text=True)
    assert gen.returncode == 0, gen.stderr
    with Pair("px", SERVER_IP, CLIENT_IP) as net:
        proc = subprocess.Popen(["ip", "netns", "exec", net.server, sys.executable, "-m", "app", "--config",
                                 str(config), "--output", str(out), "serve", *serve_options(tmp_path / "assets", config)],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: any(e["kind"] == "dnsmasq-ready" for e in events(out)) or proc.poll() is not None,
                     what="dnsmasq to be ready")
            assert proc.poll() is None, proc.stderr.read().decode()
            yield net, out, proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)


def probe(net: Pair, mac: str, arch: int, ipxe: bool = False) -> dict:
    args = ["ip", "netns", "exec", net.client, sys.executable, "-m", "tests.root.pxe_probe", net.client_if, mac,
            str(arch), CLIENT_IP] + (["ipxe"] if ipxe else [])
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_proxy_dhcp_offers_the_right_boot_file_per_firmware(appliance):
    net, out, _ = appliance
    bios = probe(net, "52:54:00:00:00:11", 0)
    assert bios["server"] == SERVER_IP and bios["file"] == "undionly.kpxe", bios
    uefi = probe(net, "52:54:00:00:00:12", 7)
    assert uefi["file"] == "snponly.efi", uefi
    chained = probe(net, "52:54:00:00:00:13", 0, ipxe=True)
    assert chained["file"] == f"http://{SERVER_IP}:8080/boot.ipxe", chained
    dhcp = [e for e in events(out) if e["kind"] == "dhcp"]
    assert {e["mac"] for e in dhcp} >= {"52:54:00:00:00:11", "52:54:00:00:00:12", "52:54:00:00:00:13"}
    assert {e["node"] for e in dhcp if e.get("node")} >= {"cp-1", "cp-2", "cp-3"}


def test_uefi_machines_get_snponly_and_a_fallback_node_ipxe(appliance, tmp_path):
    """The cluster's default (snponly.efi) for nodes and strangers alike, ipxe.efi for the one node that
    chose it (told apart by its MAC), whichever UEFI arch number its firmware sends; both over TFTP."""
    net, out, _ = appliance
    for arch in (7, 9):
        assert probe(net, "52:54:00:00:00:21", arch)["file"] == "snponly.efi"
        assert probe(net, "52:54:00:00:00:99", arch)["file"] == "snponly.efi"  # in no group
        assert probe(net, FALLBACK_MAC, arch)["file"] == "ipxe.efi"
    assert probe(net, FALLBACK_MAC, 7, ipxe=True)["file"] == f"http://{SERVER_IP}:8080/boot.ipxe"
    assert probe(net, FALLBACK_MAC, 0)["file"] == "undionly.kpxe"  # the choice is for UEFI only
    for name in ("snponly.efi", "ipxe.efi"):
        target = tmp_path / name
        code = f"import tftpy; tftpy.TftpClient({SERVER_IP!r}, 69).download({name!r}, {str(target)!r}, timeout=5)"
        result = net.python(net.client, code)
        assert result.returncode == 0, result.stderr
        assert target.read_bytes() == (IPXE_DIR / name).read_bytes()
    offered = {(e["mac"], e["detail"]["bootfile"]) for e in events(out)
               if e["kind"] == "dhcp" and "bootfile" in e.get("detail", {})}
    assert (FALLBACK_MAC, "ipxe.efi") in offered and ("52:54:00:00:00:21", "snponly.efi") in offered


def test_uefi_http_boot_gets_a_proxy_offer_with_the_loader_url(appliance, tmp_path):
    """dnsmasq's proxy stays silent for vendor class HTTPClient; serve answers on the same port: no
    address, option 60 HTTPClient, the URL of the node's own build, which HTTP then serves."""
    net, out, _ = appliance
    answers = {mac: probe(net, mac, 16) for mac in ("52:54:00:00:00:21", FALLBACK_MAC, "52:54:00:00:00:99")}
    base = f"http://{SERVER_IP}:8080/uefi"
    assert {mac: a["file"] for mac, a in answers.items()} == {
        "52:54:00:00:00:21": f"{base}/snponly.efi", FALLBACK_MAC: f"{base}/ipxe.efi",
        "52:54:00:00:00:99": f"{base}/snponly.efi"}
    assert all(a["server"] == SERVER_IP and a["yiaddr"] == "0.0.0.0" and a["vendor_class"] == "HTTPClient"
               for a in answers.values()), answers
    assert probe(net, "52:54:00:00:00:21", 7)["file"] == "snponly.efi"  # dnsmasq still answers PXE beside it
    for name in ("snponly.efi", "ipxe.efi"):
        code = (f"import urllib.request,sys; sys.stdout.buffer.write(urllib.request.urlopen({base + '/' + name!r})"
                ".read())")
        fetched = subprocess.run(["ip", "netns", "exec", net.client, sys.executable, "-c", code],
                                 capture_output=True, timeout=60)
        assert fetched.returncode == 0 and fetched.stdout == (IPXE_DIR / name).read_bytes(), fetched.stderr
    recorded = {(e["mac"], e["detail"]["bootfile"]) for e in events(out)
                if e["kind"] == "dhcp" and e.get("source") == "httpboot"}
    assert (FALLBACK_MAC, f"{base}/ipxe.efi") in recorded


FLOOD = """
from scapy.all import BOOTP, DHCP, IP, UDP, Ether, Raw, fragment, sendp
iface = IFACE
options = [("message-type", "discover"), ("vendor_class_id", b"HTTPClient:Arch:00016:UNDI:003000"),
           (93, (16).to_bytes(2, "big")), "end"]
def discover(mac, tail=b""):
    return (Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
            / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=7, flags=0x8000)
            / DHCP(options=options) / Raw(tail))
made_up = [f"52:54:01:00:{i // 256:02x}:{i % 256:02x}" for i in range(300)]
whole = bytes(discover("52:54:02:00:00:02")[BOOTP])
broken = [Ether(dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
          / Raw(whole[:n]) for n in (0, 1, 239, 241, 250)]
big = discover("52:54:02:00:00:03", bytes(1400))  # past one frame: sent, and taken, in fragments
broken += [Ether(src="52:54:02:00:00:03", dst="ff:ff:ff:ff:ff:ff") / f for f in fragment(big[IP], 1000)]
sendp(broken + [discover(mac) for mac in made_up * 2], iface=iface, inter=0.002, verbose=False)
"""


def test_made_up_macs_asking_for_http_boot_are_a_capped_discovery(appliance):
    """HTTP Boot answers go through the boot routes' record path: DISCOVERs from 300 made-up MACs, twice
    each, are at most one `discovered` line per MAC and 256 MACs, never a `dhcp` line per packet; cut
    packets in between change nothing, and serve goes on answering."""
    net, out, proc = appliance
    result = net.python(net.client, FLOOD.replace("IFACE", repr(net.client_if)))
    assert result.returncode == 0, result.stderr
    # The flood went in before this DISCOVER on the same socket: its answer means all were read.
    assert probe(net, "52:54:00:00:00:21", 16)["file"] == f"http://{SERVER_IP}:8080/uefi/snponly.efi"
    strangers = [e for e in events(out) if e.get("mac", "").startswith(("52:54:01:", "52:54:02:"))]
    assert strangers and all(e["kind"] == "discovered" for e in strangers), strangers[:3]
    assert len(strangers) == len({e["mac"] for e in strangers}) <= 256
    assert proc.poll() is None


def test_tftp_serves_ipxe_to_the_client(appliance, tmp_path):
    net, out, _ = appliance
    # The client is worker-2: a machine that is no node is at most a discovery, not a tftp event.
    sh("ip", "-n", net.client, "link", "set", net.client_if, "address", "52:54:00:00:00:22")
    target = tmp_path / "undionly.kpxe"
    code = (f"import tftpy; tftpy.TftpClient({SERVER_IP!r}, 69).download('undionly.kpxe', {str(target)!r}, "
            "timeout=5)")
    result = net.python(net.client, code)
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == (IPXE_DIR / "undionly.kpxe").read_bytes()
    wait_for(lambda: any(e["kind"] == "tftp" and e["mac"] == "52:54:00:00:00:22" for e in events(out)),
             what="worker-2's tftp event")


def test_killed_dnsmasq_is_restarted_and_sigterm_leaves_no_child(appliance):
    net, out, proc = appliance
    first = next(e for e in events(out) if e["kind"] == "dnsmasq-started")["detail"]["pid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: any(e["kind"] == "dnsmasq-restarted" for e in events(out)), what="a restart event")
    second = wait_for(lambda: [e["detail"]["pid"] for e in events(out) if e["kind"] == "dnsmasq-started"][1:],
                      what="a second dnsmasq")[0]
    assert second != first and alive(second)
    wait_for(lambda: sum(e["kind"] == "dnsmasq-ready" for e in events(out)) >= 2, what="the new dnsmasq ready")
    assert probe(net, "52:54:00:00:00:21", 0)["file"] == "undionly.kpxe"  # the new one answers
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not alive(second)
    assert events(out)[-1]["kind"] == "serve-stopped"


def test_taken_dhcp_port_is_a_clear_error(tmp_path):
    require_root_tools("dnsmasq")
    config = cluster_yaml(tmp_path)
    out = tmp_path / "output"
    subprocess.run([sys.executable, "-m", "app", "--config", str(config), "--output", str(out), "--templates",
                    "/nonexistent", "generate", "--ipxe-dir", str(IPXE_DIR)], cwd=REPO, check=True,
                   capture_output=True)
    with Pair("tk", SERVER_IP, CLIENT_IP) as net:
        blocker = subprocess.Popen(["ip", "netns", "exec", net.server, sys.executable, "-c",
                                    "import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
                                    "s.bind(('0.0.0.0',67)); print('bound',flush=True); time.sleep(120)"],
                                   stdout=subprocess.PIPE)
        try:
            assert blocker.stdout.readline().strip() == b"bound"
            result = sh("ip", "netns", "exec", net.server, sys.executable, "-m", "app", "--config", str(config),
                        "--output", str(out), "serve", *serve_options(tmp_path / "assets", config), check=False, cwd=REPO,
                        timeout=60)
        finally:
            blocker.kill()
            blocker.wait()
    assert result.returncode == 1
    assert "port dnsmasq needs (67 DHCP, 69 TFTP or 4011 proxy DHCP) is taken" in result.stderr
    assert "Traceback" not in result.stderr


def dnsmasq_pids(out: Path) -> list[int]:
    """dnsmasq processes running this output's config (not their guardians, whose argv has it too)."""
    from app import process

    def comm(pid: int) -> str:
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return ""
    return [pid for pid in process.with_argument(f"--conf-file={out / 'dnsmasq.conf'}") if comm(pid) == "dnsmasq"]


def test_sigkilled_serve_leaves_no_dnsmasq(appliance):
    """dnsmasq drops to nobody, which clears its own parent-death signal: the guardian must stop it."""
    _, out, proc = appliance
    dnsmasq = next(e for e in events(out) if e["kind"] == "dnsmasq-started")["detail"]["pid"]
    assert alive(dnsmasq)
    proc.kill()
    proc.wait(timeout=10)
    wait_for(lambda: not alive(dnsmasq), 10, "dnsmasq to stop with its serve")
    wait_for(lambda: dnsmasq_pids(out) == [], 10, "its guardian to exit too")


def test_a_starting_serve_stops_a_stale_dnsmasq_of_its_output(appliance, tmp_path):
    net, out, proc = appliance
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    # An orphan as an older serve (or a killed guardian) would leave it: our config, no parent of ours.
    stale = subprocess.Popen(["ip", "netns", "exec", net.server, "dnsmasq", "--keep-in-foreground",
                              f"--conf-file={out / 'dnsmasq.conf'}", "--pid-file=", "--log-facility=-"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: dnsmasq_pids(out), 10, "the stale dnsmasq to run")
    again = subprocess.Popen(["ip", "netns", "exec", net.server, sys.executable, "-m", "app", "--output", str(out),
                              "serve", "--listen", f"{SERVER_IP}:8080", *serve_options(tmp_path / "assets")],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: stale.poll() is not None, 20, "serve to stop the stale dnsmasq")
        wait_for(lambda: sum(e["kind"] == "dnsmasq-ready" for e in events(out)) >= 2, 20, "serve's own dnsmasq")
        assert len(dnsmasq_pids(out)) == 1
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=30)
        stale.kill()
