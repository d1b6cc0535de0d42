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
        root = [f"netns add {ns}" for ns in (self.switch, self.appliance)]
        root += [f"netns add {self.machine_ns(i)}" for i in range(n)]
        root.append(f"link add appl netns {self.switch} type veth peer name eth0 netns {self.appliance}")
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

    def filter_broadcasts(self) -> bool:
        """What a real switch and NICs do in hardware, done before the copies cost CPU here: the
        bridge floods every DHCP broadcast to all N ports, and with N = 1,000 that flooding, charged
        to the sender's syscalls, was 95% of dnsmasq's CPU. In the switch's forward hook: a
        DISCOVER goes only to the appliance's port, a DHCP answer only to the port whose MAC is its
        client hardware address (BOOTP chaddr: 28 bytes into the UDP payload); ARP requests (also
        flooded: a thousand machines each ask for the appliance, the appliance asks for each) go
        only to the port holding the address asked for. Needs nft; without
        it nothing is filtered and the report says so. Returns whether the filter is on."""
        if shutil.which("nft") is None:
            return False
        lines = [f"table bridge {self.prefix} {{"]
        for i, (mac, ip) in enumerate(zip(self.macs, self.ips, strict=True)):
            lines.append(f"  chain p{i} {{ udp dport 68 @th,288,48 != 0x{mac.replace(':', '')} drop; "
                         f"arp operation request arp daddr ip != {ip} drop; }}")
        ports = ", ".join(f'"{self.prefix}b{i}" : jump p{i}' for i in range(len(self.macs)))
        lines += ["  chain forward {", "    type filter hook forward priority 0; policy accept;",
                  '    udp dport 67 oifname != "appl" drop',
                  '    arp operation request iifname != "appl" oifname != "appl" drop',
                  '    oifname vmap { ' + ports + ' }',
                  "  }", "}"]
        result = subprocess.run(["ip", "netns", "exec", self.switch, "nft", "-f", "-"], input="\n".join(lines) + "\n",
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RackError(f"nft: {result.stderr.strip()[-1000:]}")
        return True

    def namespaces(self) -> list[str]:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split("\n")
        return [line.split()[0] for line in listed if line.strip() and line.split()[0].startswith(self.prefix)]

    def down(self) -> None:
        names = self.namespaces()
        if names:
            _ip("-batch", "-", stdin="".join(f"netns del {name}\n" for name in names))

    def flush_neighbours(self) -> None:
        _ip("-n", self.appliance, "neigh", "flush", "all")
