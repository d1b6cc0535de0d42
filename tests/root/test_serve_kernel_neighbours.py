"""The neighbour lookup asked of a real kernel (rtnetlink) agrees with the kernel's text table on a
segment of 1,000 machines, entries in every state, an IPv6 neighbour and a
machine the kernel learnt by itself from a TCP connection; and where they differ, netlink is right: an
entry planted for an address behind a gateway, and policy routing."""

from __future__ import annotations

import json
import os
import sys

from tests.root.netns import Pair, require_root_tools, sh
from tests.support.paths import REPO

SERVER_IP, CLIENT_IP = "10.232.0.1", "10.232.0.2"
MACHINES = 1000
STATES = {"stale": True, "reachable": True, "probe": True, "delay": True, "incomplete": False, "failed": False,
          "noarp": False}


def machine(i: int) -> tuple[str, str]:
    return f"10.232.{1 + i // 250}.{i % 250 + 1}", f"52:54:50:00:{i >> 8:02x}:{i & 255:02x}"


def fill_table(pair: Pair) -> None:
    # The kernel moves a `delay` entry to `probe`, and a `probe` one to `failed`, after a few seconds of
    # unanswered ARP: a loaded machine could read the two tables on either side of that. With these
    # timers at an hour every state stays put for the test's life.
    lines = [f"ntable change name arp_cache dev {pair.server_if} retrans 3600000 delay_probe 3600000"]
    lines += [f"neigh replace {ip} lladdr {mac} dev {pair.server_if} nud permanent"
              for ip, mac in map(machine, range(MACHINES))]
    lines += [f"neigh replace 10.232.9.{n} lladdr 52:54:50:09:00:{n:02x} dev {pair.server_if} nud {state}"
              for n, state in enumerate(STATES, start=1)]
    # An entry for an address the kernel reaches through a gateway, as a forged ARP from anyone on
    # the L2 plants one: the replies go to the gateway, so it says nothing about the sender.
    lines += [f"route add 10.99.0.0/24 via {CLIENT_IP}",
              f"neigh replace 10.99.0.5 lladdr 52:54:50:99:00:05 dev {pair.server_if} nud permanent",
              # Policy routing: 10.233.0.0/24 is only in table 100, used for replies from 10.233.0.1.
              f"addr add 10.233.0.1/24 dev {pair.server_if} noprefixroute",
              f"route add 10.233.0.0/24 dev {pair.server_if} src 10.233.0.1 table 100",
              "rule add from 10.233.0.1 lookup 100",
              f"neigh replace 10.233.0.5 lladdr 52:54:50:33:00:05 dev {pair.server_if} nud permanent",
              f"addr add 2001:db8:232::1/64 dev {pair.server_if} nodad",
              f"neigh replace 2001:db8:232::5 lladdr 52:54:50:66:00:05 dev {pair.server_if} nud permanent"]
    batch = "\n".join(lines) + "\n"
    sh("ip", "-n", pair.server, "-batch", "-", input=batch)


ASK = f"""
import json, socket, subprocess, sys
sys.path.insert(0, {str(REPO)!r})
from app.serve.kernel import neighbours
ips = sys.argv[1:]
policy = [neighbours._NETLINK.lookup("10.233.0.5", "10.233.0.1"), neighbours._NETLINK.lookup("10.233.0.5")]
# A machine the kernel learnt by itself: it connects to us, we look up its address.
listener = socket.create_server(({SERVER_IP!r}, 0))
client = subprocess.Popen(["ip", "netns", "exec", CLIENT_NS, sys.executable, "-c",
    "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 10).recv(1)",
    {SERVER_IP!r}, str(listener.getsockname()[1])])
conn, (peer, _) = listener.accept()
learnt = neighbours.link_mac(peer)
conn.close(); client.wait(10)
print(json.dumps({{"netlink": {{ip: neighbours._NETLINK.lookup(ip) for ip in ips}},
                   "text": {{ip: neighbours.arp_lookup(ip) for ip in ips}},
                   "learnt": [peer, learnt], "policy": policy, "usable": neighbours._NETLINK.usable}}))
"""


def test_netlink_and_the_text_table_agree_on_a_real_segment():
    require_root_tools()
    with Pair(f"nl{os.getpid() % 1000}", SERVER_IP, CLIENT_IP, prefix=16) as pair:
        fill_table(pair)
        ips = [machine(i)[0] for i in range(MACHINES)] + [f"10.232.9.{n}" for n in range(1, len(STATES) + 1)]
        odd = ["10.99.0.5", "10.99.0.6", "10.232.200.200", SERVER_IP, "127.0.0.1", "2001:db8:232::5", "2001:db8:232::6",
               "::ffff:" + machine(7)[0], "not-an-address"]
        code = ASK.replace("CLIENT_NS", repr(pair.client))
        result = sh("ip", "netns", "exec", pair.server, sys.executable, "-c", code,
                    *ips, *odd, check=False, timeout=120)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        client_mac = json.loads(sh("ip", "-n", pair.client, "-j", "link", "show", pair.client_if).stdout)[0]["address"]
    netlink, text = answer["netlink"], answer["text"]
    assert answer["usable"], "this kernel answered no single-entry neighbour request"
    for i in range(MACHINES):
        ip, mac = machine(i)
        assert netlink[ip] == text[ip] == mac, ip
    for n, (state, valid) in enumerate(STATES.items(), start=1):
        ip = f"10.232.9.{n}"
        assert netlink[ip] == text[ip] == (f"52:54:50:09:00:{n:02x}" if valid else None), state
    assert text["10.99.0.5"] == "52:54:50:99:00:05" and netlink["10.99.0.5"] is None  # the text table was fooled
    assert netlink["10.99.0.6"] is None
    assert answer["policy"] == ["52:54:50:33:00:05", None]  # found from our end of the connection only
    assert netlink["10.232.200.200"] is None and netlink[SERVER_IP] is None and netlink["127.0.0.1"] is None
    assert netlink["2001:db8:232::5"] == "52:54:50:66:00:05" and netlink["2001:db8:232::6"] is None
    assert netlink["::ffff:" + machine(7)[0]] == machine(7)[1]
    assert netlink["not-an-address"] is None
    assert answer["learnt"] == [CLIENT_IP, client_mac]
