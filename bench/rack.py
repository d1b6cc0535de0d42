"""A rack in network namespaces for the boot storm (root only): a switch namespace holds a bridge;
the appliance's namespace has one veth (`eth0`, the appliance's address) on it, and each machine
has its own namespace with one veth (`eth0`) whose MAC is its node's MAC. The appliance's neighbour
table therefore learns each machine's real MAC, and `--bind link` (the default) applies as on a real
L2. (A first version put the bridge and its thousand ports in the appliance's namespace: dnsmasq
then walks a thousand interfaces per DHCP packet, which no real appliance has to.)

Made with `ip -batch` (one process for all links); removed by namespace name."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.firmware import in_netns


class RackError(Exception):
    pass


def _ip(*args: str, stdin: str | None = None) -> None:
    result = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RackError(f"ip {' '.join(args)}: {result.stderr.strip()[-1000:]}")


@dataclass
class Rack:
    prefix: str
    macs: list[str]
    ips: list[str]
    appliance_ip: str
    prefix_len: int = 16

    @property
    def appliance(self) -> str:
        return f"{self.prefix}a"

    @property
    def switch(self) -> str:
        return f"{self.prefix}s"

    def machine_ns(self, i: int) -> str:
        return f"{self.prefix}m{i}"

    def up(self) -> None:
        self.down()
        n = len(self.macs)
        spaces = [f"netns add {ns}" for ns in (self.switch, self.appliance)]
        spaces += [f"netns add {self.machine_ns(i)}" for i in range(n)]
        _ip("-batch", "-", stdin="\n".join(spaces) + "\n")
        self.quiet()
        root = [f"link add appl netns {self.switch} type veth peer name eth0 netns {self.appliance}"]
        root += [f"link add {self.prefix}b{i} netns {self.switch} type veth peer name eth0 address {mac} "
                 f"netns {self.machine_ns(i)}" for i, mac in enumerate(self.macs)]
        _ip("-batch", "-", stdin="\n".join(root) + "\n")
        switch = ["link add br0 type bridge", "link set br0 up", "link set appl master br0 up"]
        switch += [f"link set {self.prefix}b{i} master br0 up" for i in range(n)]
        _ip("-n", self.switch, "-batch", "-", stdin="\n".join(switch) + "\n")
        _ip("-n", self.appliance, "-batch", "-", stdin=f"link set lo up\nlink set eth0 up\n"
            f"addr add {self.appliance_ip}/{self.prefix_len} dev eth0\n")
        # One `ip` per machine namespace (a batch cannot switch namespaces): through one shell.
        script = "".join(f"ip -n {self.machine_ns(i)} addr add {ip}/{self.prefix_len} dev eth0 && "
                         f"ip -n {self.machine_ns(i)} link set eth0 up\n" for i, ip in enumerate(self.ips))
        result = subprocess.run(["sh", "-e"], input=script, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RackError(f"machine addresses: {result.stderr.strip()[-1000:]}")

    def quiet(self) -> None:
        """What PXE firmware and a switch do not do, switched off before the links come up: IPv6 in
        the machines' and the switch's namespaces (firmware booting over IPv4 sends no router
        solicitations, MLD reports or duplicate-address probes; a thousand new links each sending
        them, flooded to a thousand ports, would load the storm's first seconds), and the bridge's
        calls into the IP firewall hooks (bridge-nf-call-*: a real switch routes nothing and
        checks no source address, the kernel's default here does, per frame)."""
        off = {"net/ipv6/conf/all/disable_ipv6": "1", "net/ipv6/conf/default/disable_ipv6": "1"}
        bridge = {f"net/bridge/bridge-nf-call-{t}": "0" for t in ("iptables", "ip6tables", "arptables")}
        for ns, settings in [(self.switch, {**off, **bridge})] + [(self.machine_ns(i), off)
                                                                   for i in range(len(self.macs))]:
            in_netns(ns, lambda settings=settings: _write_sysctls(settings))

    def filter_broadcasts(self) -> bool:
        """What a real switch does in hardware and NICs drop by address, done before a Linux bridge
        copies a broadcast to all N ports in software (each copy charged to the sender's syscall, so
        with a thousand ports the copies, not the appliance's work, would fill dnsmasq's and the
        simulator's CPU). At the switch's ingress
        (bridge prerouting) a broadcast is readdressed to the one port that would keep it, so the
        bridge forwards one frame: a DHCP DISCOVER to the appliance; a DHCP answer to the machine
        whose MAC is its client hardware address (BOOTP chaddr: 28 bytes into the UDP payload); an
        ARP request to the holder of the address asked for. What each machine receives is what it
        would have picked out of the flood (only the Ethernet destination differs: its own MAC, not
        ff:ff:ff:ff:ff:ff); the machines' ports flood nothing else to them and the forwarding table
        holds every port's MAC from the start. Needs nft; without it nothing is filtered and the
        report says so. Returns whether the filter is on."""
        if shutil.which("nft") is None:
            return False
        appliance_mac = self._appliance_mac()
        chaddr = ", ".join(f"0x{mac.replace(':', '')} : {mac}" for mac in self.macs)
        by_ip = ", ".join(f"{ip} : {mac}" for ip, mac in zip([self.appliance_ip, *self.ips],
                                                              [appliance_mac, *self.macs], strict=True))
        lines = [f"table bridge {self.prefix} {{",
                 f"  map chaddr {{ typeof @th,288,48 : ether daddr; elements = {{ {chaddr} }} }}",
                 f"  map by_ip {{ typeof arp daddr ip : ether daddr; elements = {{ {by_ip} }} }}",
                 "  chain ingress {", "    type filter hook prerouting priority 0; policy accept;",
                 "    ether type ip6 drop",
                 f"    ether daddr ff:ff:ff:ff:ff:ff udp dport 67 ether daddr set {appliance_mac}",
                 "    ether daddr ff:ff:ff:ff:ff:ff udp dport 68 ether daddr set @th,288,48 map @chaddr",
                 "    ether daddr ff:ff:ff:ff:ff:ff arp operation request ether daddr set arp daddr ip map @by_ip",
                 "  }", "}"]
        result = subprocess.run(["ip", "netns", "exec", self.switch, "nft", "-f", "-"], input="\n".join(lines) + "\n",
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RackError(f"nft: {result.stderr.strip()[-1000:]}")
        ports = [("appl", appliance_mac)] + [(f"{self.prefix}b{i}", mac) for i, mac in enumerate(self.macs)]
        _ip("-n", self.switch, "-batch", "-", stdin="".join(
            f"link set dev {port} type bridge_slave flood off mcast_flood off bcast_flood off\n"
            for port, _ in ports[1:]))
        result = subprocess.run(["bridge", "-n", self.switch, "-batch", "-"], input="".join(
            f"fdb replace {mac} dev {port} master static\n" for port, mac in ports), capture_output=True, text=True,
            check=False)
        if result.returncode != 0:
            raise RackError(f"bridge fdb: {result.stderr.strip()[-1000:]}")
        return True

    def _appliance_mac(self) -> str:
        shown = subprocess.run(["ip", "-n", self.appliance, "-o", "link", "show", "eth0"], capture_output=True,
                               text=True, check=True).stdout
        return shown.split("link/ether ", 1)[1].split()[0]

    def namespaces(self) -> list[str]:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split("\n")
        return [line.split()[0] for line in listed if line.strip() and line.split()[0].startswith(self.prefix)]

    def down(self) -> None:
        names = self.namespaces()
        if names:
            _ip("-batch", "-", stdin="".join(f"netns del {name}\n" for name in names))

    def flush_neighbours(self) -> None:
        _ip("-n", self.appliance, "neigh", "flush", "all")


def _write_sysctls(settings: dict[str, str]) -> None:
    """In the calling thread's network namespace (/proc/sys/net is the opener's)."""
    for key, value in settings.items():
        Path("/proc/sys", key).write_text(value)
