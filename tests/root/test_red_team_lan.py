"""The red team's network-side attacks on a real L2 (issue #33), with `serve` as a real process:

- item 4: spoofed PXE DHCPDISCOVERs with made-up MACs, answered by the real dnsmasq, made a node each
  (3,000 made 2,830). Now they reach the capped discovery table at most, never the nodes.
- item 3: an ARP request whose payload carries the victim's MAC, sent from the attacker's own MAC
  (no frame from the victim's MAC on the wire), moved the appliance's neighbour entry for the
  attacker's address to the victim's MAC and won cp-1's install config; an IPv6 neighbour
  solicitation with the victim's MAC in its source link-layer option did the same. Now the change of
  MAC behind that address is refused and contests cp-1's window.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.root.lan import Lan, serving
from tests.root.netns import require_root_tools, sh
from tests.root.test_serve_supervise_dnsmasq import CLIENT_IP, SERVER_IP, appliance, events, tmp_path  # noqa: F401
from tests.support.paths import REPO
from tests.support.processes import wait_for

KNOWN = {"52:54:00:00:00:11", "52:54:00:00:00:12", "52:54:00:00:00:13", "52:54:00:00:00:21", "52:54:00:00:00:22"}
SPOOFED = 400  # more than the 256 unknown machines the appliance keeps

FLOOD = """
import random, sys
from scapy.all import BOOTP, DHCP, IP, UDP, Ether, sendp
from tests.root.pxe_probe import pxe_options
rng = random.Random(33)
frames = []
for _ in range(int(sys.argv[2])):
    mac = ":".join(f"{b:02x}" for b in [0x02, *rng.randbytes(5)])
    frames.append(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255") /
                  UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex(mac.replace(":", "")), xid=rng.getrandbits(32),
                                                  flags=0x8000) / DHCP(options=pxe_options(0, False, "discover")))
sendp(frames, iface=sys.argv[1], verbose=False)
"""


def status_from(net, ns: str, url: str) -> dict:
    run = net.python(ns, f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=20).read().decode())")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_spoofed_pxe_discovers_make_no_node(appliance):  # noqa: F811 - the fixture, imported
    net, out, _ = appliance
    flood = subprocess.run(["ip", "netns", "exec", net.client, sys.executable, "-c", FLOOD, net.client_if,
                            str(SPOOFED)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert flood.returncode == 0, flood.stderr

    def seen_by_dnsmasq() -> int:
        """Spoofed machines that reached the event log, as discoveries or (before the fix) as DHCP."""
        return len({e["mac"] for e in events(out) if e.get("source") == "dnsmasq" and e.get("mac") not in KNOWN
                    and e["kind"] in ("discovered", "dhcp")})
    wait_for(lambda: seen_by_dnsmasq() >= 256, 60, "dnsmasq to answer the flood")
    status = status_from(net, net.client, f"http://{SERVER_IP}:8080/status")
    assert {n["mac"] for n in status["nodes"]} == KNOWN  # was one node per spoofed MAC
    assert 0 < len(status["unknown_machines"]) <= 256
    assert not [e for e in events(out) if e["kind"] == "dhcp" and e.get("mac") not in KNOWN]


# -- item 3: a forged ARP claim -------------------------------------------------------------------------------
LAN_SERVER, PORT = "10.234.0.2", 8080
CP1, VICTIM_IP = "52:54:00:00:00:11", "10.234.0.11"
ATTACKER_IP, ATTACKER_MAC = "10.234.0.66", "52:54:00:66:66:66"
V6 = {"server": "fd34::2", "victim": "fd34::11", "attacker": "fd34::66"}

# Run in the attacker's namespace: connect (the handshake completes with the attacker's own MAC in
# the appliance's table), say so, wait for "claim", send an ARP request whose payload names the
# victim's MAC as the sender of the attacker's address (the frame itself from the attacker's MAC),
# wait for "ask", then ask for the victim's install config on the open connection and print the
# status line.
ATTACK = """
import socket, sys
from scapy.all import ARP, IPv6, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, Ether, get_if_hwaddr, sendp
iface, server, port, victim_mac, own_ip, server_mac = sys.argv[1:3] + [int(sys.argv[3])] + sys.argv[4:7]
s = socket.create_connection((server, port), timeout=60)
print("connected", flush=True)
sys.stdin.readline()
if ":" in server:  # NDP: a solicitation whose source link-layer option names the victim's MAC
    claim = Ether(src=get_if_hwaddr(iface), dst=server_mac) / IPv6(src=own_ip, dst=server, hlim=255) / \
        ICMPv6ND_NS(tgt=server) / ICMPv6NDOptSrcLLAddr(lladdr=victim_mac)
else:
    claim = Ether(src=get_if_hwaddr(iface), dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=victim_mac, psrc=own_ip, hwdst="00:00:00:00:00:00", pdst=server)
for _ in range(3):
    sendp(claim, iface=iface, verbose=False)
print("claimed", flush=True)
sys.stdin.readline()
s.sendall(f"GET /ignition?mac={victim_mac} HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n".encode())
answer = b""
while not answer.endswith(b"\\r\\n") or b"\\r\\n" not in answer:
    chunk = s.recv(65536)
    if not chunk:
        break
    answer += chunk
print(answer.split(b"\\r\\n", 1)[0].decode(), flush=True)
"""


@pytest.fixture(params=["arp", "ndp"])
def lan(request):
    require_root_tools()
    pytest.importorskip("scapy", reason="needs scapy for the forged ARP (test extra)")
    v6 = request.param == "ndp"
    server = V6["server"] if v6 else LAN_SERVER

    def prepare(net: Lan) -> None:
        if v6:
            sh("ip", "-n", net.server, "addr", "add", f"{V6['server']}/64", "dev", "br0", "nodad")
    with serving("ct", "10.234.0", f"{server}:{PORT}", prepare) as (net, out, _):
        net.add("victim", CP1, VICTIM_IP)
        net.add("attacker", ATTACKER_MAC, ATTACKER_IP)
        if not v6:
            yield net, out, f"http://{server}:{PORT}", server, ATTACKER_IP
            return
        for name in ("victim", "attacker"):
            sh("ip", "-n", net.machines[name], "addr", "add", f"{V6[name]}/64", "dev", "eth0", "nodad")
        yield net, out, f"http://[{server}]:{PORT}", server, V6["attacker"]


def neighbour(net: Lan, address: str) -> str:
    found = json.loads(sh("ip", "-n", net.server, "-j", "neigh", "show", address).stdout or "[]")
    return found[0].get("lladdr", "") if found else ""


def test_an_arp_or_ndp_claim_of_the_victims_mac_gets_no_config_and_contests_the_window(lan):
    net, out, url, server, attacker_ip = lan
    status, _ = net.http("victim", f"{url}/ipxe?mac={CP1}")
    assert status == 200  # cp-1's window opens, bound to the victim's MAC
    bridge_mac = json.loads(sh("ip", "-n", net.server, "-j", "link", "show", "br0").stdout)[0]["address"]
    attack = subprocess.Popen(["ip", "netns", "exec", net.machines["attacker"], sys.executable, "-c", ATTACK, "eth0",
                               server, str(PORT), CP1, attacker_ip, bridge_mac], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert attack.stdout.readline().strip() == "connected", attack.stderr.read()
        assert neighbour(net, attacker_ip) == ATTACKER_MAC
        attack.stdin.write("claim\n")
        attack.stdin.flush()
        assert attack.stdout.readline().strip() == "claimed", attack.stderr.read()
        wait_for(lambda: neighbour(net, attacker_ip) == CP1, 10, "the claim to move the appliance's entry")
        attack.stdin.write("ask\n")
        attack.stdin.flush()
        # The answer goes to the victim's MAC until the kernel gives up on the entry (seconds, and
        # TCP's backoff on top): once serve has decided, the entry is dropped so that it goes out now.
        wait_for(lambda: any(e["kind"] == "alert" and e["detail"].get("remote") == attacker_ip
                             or e["kind"] == "install-ignition" for e in events(out)),
                 20, "serve to decide on the attacker's request")
        sh("ip", "-n", net.server, "neigh", "del", attacker_ip, "dev", "br0", check=False)
        answer = attack.stdout.readline().strip()
    finally:
        attack.kill()
        attack.wait()
    answer = answer or attack.stderr.read()[-2000:]
    assert answer.startswith("HTTP/1.1 403"), answer  # it was 200, with cp-1's install config
    claims = [e for e in events(out) if e["kind"] == "alert" and "forged ARP" in e["detail"]["reason"]]
    assert claims and claims[0]["detail"]["remote"] == attacker_ip
    assert (claims[0]["detail"]["link_mac"], claims[0]["detail"]["earlier_link_mac"]) == (CP1, ATTACKER_MAC)
    assert any(e["kind"] == "window-contested" and e["mac"] == CP1 for e in events(out))
    status, _ = net.http("victim", f"{url}/ignition?mac={CP1}")
    assert status == 403  # contested: nobody gets cp-1's config until `reinstall`
