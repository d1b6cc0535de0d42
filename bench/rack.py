"""A rack in network namespaces for the boot storm (root only): the appliance's namespace holds a
bridge with the appliance's address; each machine has its own namespace with one veth (`eth0`)
whose MAC is its node's MAC, on that bridge. The appliance's neighbour table therefore learns each
machine's real MAC, and `--bind link` (the default) applies as on a real L2.

Made with `ip -batch` (one process for all links); removed by namespace name."""

from __future__ import annotations

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

    def machine_ns(self, i: int) -> str:
        return f"{self.prefix}m{i}"

    def up(self) -> None:
        self.down()
        n = len(self.macs)
        root = [f"netns add {self.appliance}"] + [f"netns add {self.machine_ns(i)}" for i in range(n)]
        root += [f"link add {self.prefix}b{i} netns {self.appliance} type veth peer name eth0 address {mac} "
                 f"netns {self.machine_ns(i)}" for i, mac in enumerate(self.macs)]
        _ip("-batch", "-", stdin="\n".join(root) + "\n")
        appliance = ["link set lo up", "link add br0 type bridge", "link set br0 up",
                     f"addr add {self.appliance_ip}/{self.prefix_len} dev br0"]
        appliance += [f"link set {self.prefix}b{i} master br0 up" for i in range(n)]
        _ip("-n", self.appliance, "-batch", "-", stdin="\n".join(appliance) + "\n")
        # One `ip` per machine namespace (a batch cannot switch namespaces): through one shell.
        script = "".join(f"ip -n {self.machine_ns(i)} addr add {ip}/{self.prefix_len} dev eth0 && "
                         f"ip -n {self.machine_ns(i)} link set eth0 up\n" for i, ip in enumerate(self.ips))
        result = subprocess.run(["sh", "-e"], input=script, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RackError(f"machine addresses: {result.stderr.strip()[-1000:]}")

    def namespaces(self) -> list[str]:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout.split("\n")
        return [line.split()[0] for line in listed if line.strip() and line.split()[0].startswith(self.prefix)]

    def down(self) -> None:
        names = self.namespaces()
        if names:
            _ip("-batch", "-", stdin="".join(f"netns del {name}\n" for name in names))

    def flush_neighbours(self) -> None:
        _ip("-n", self.appliance, "neigh", "flush", "all")
