"""`serve`'s settings as one typed tree; each default is defined here, once.

The command line fills a `ServeSettings` (`cli/serve.py`), `init` builds one the same way, and the
leader hands it to its other workers as JSON. Below it: `AppSettings` (what the HTTP application
serves, all that `build_app` needs), `BootSettings` (the boot policy's knobs) and `Limits` (what
keeps abuse cheap). Nothing here imports the rest of serve, so the CLI can read the defaults without
loading the server.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from app.logs import LogFormat


class Dhcp(str, Enum):
    proxy = "proxy"  # answer PXE next to the site's own DHCP server
    none = "none"


class Tftp(str, Enum):
    dnsmasq = "dnsmasq"
    builtin = "builtin"  # tftpy in a thread, for sites whose DHCP points at us
    none = "none"


class Bind(str, Enum):
    """How a request is tied to a machine (docs/security.md, "Binding a request to a machine")."""

    link = "link"  # who the neighbour table says: the nodes share our L2 (the default)
    address = "address"  # routed or relayed sites: the address that PXE-booted, first boot wins


@dataclass(frozen=True)
class BootSettings:
    own_tree: bool = True  # False for a foreign Matchbox data dir: no windows, Matchbox's behaviour
    strict_matchbox: bool = False  # plain 404s instead of explanatory scripts, and no boot guard
    window_seconds: float = 3600.0  # how long a PXE boot keeps a node's install window open
    retry_seconds: int = 30  # how long an unknown or held machine waits before asking again
    bind: Bind = Bind.link


@dataclass(frozen=True)
class Limits:
    idle_seconds: float = 15.0  # no complete request within this on a (new or kept-alive) connection: closed
    max_connections: int = 4096
    per_address: int = 64
    max_callback_bytes: int = 16 * 1024  # the largest request body (a node's progress report)


@dataclass(frozen=True)
class AppSettings:
    data_dir: Path  # a Matchbox data dir: groups/, profiles/, ignition/, generic/
    assets: Path | None = None  # served at /assets/
    images: Path | None = None  # an OCI image layout served at /v2/
    boot: BootSettings = field(default_factory=BootSettings)
    limits: Limits = field(default_factory=Limits)
    loaders: Path | None = None  # tftp/: its iPXE EFI builds also served at /uefi/ for UEFI HTTP Boot


DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
JITTER = 1.2  # client-go's JitterFactor: a retry may come this much later than retry_period


def default_identity() -> str:
    """HOSTNAME_PID: unique among the replicas (a pod's hostname is its name), and readable in the Lease."""
    return f"{socket.gethostname()}_{os.getpid()}"


@dataclass(frozen=True)
class LeaseSettings:
    """Leader election through a coordination.k8s.io/v1 Lease (serve/cluster/). The defaults are
    client-go's (15 s / 10 s / 2 s). The holder stops leading `renew_deadline` after its last successful
    renewal began; another replica takes over `lease_duration` after it last saw the Lease change: the
    difference is the margin that keeps two leaders from ever serving at once."""

    identity: str  # this replica's name in the Lease (serve: hostname_pid)
    namespace: str = "default"
    name: str = "bootstrap-node"
    lease_duration: int = 15  # whole seconds: the Lease stores leaseDurationSeconds as an integer
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    kubeconfig: Path | None = None  # None: the in-cluster config (a pod's ServiceAccount)

    def problems(self) -> list[str]:
        """Everything wrong with these settings, as messages naming the option; [] when usable."""
        found = []
        if not self.identity or len(self.identity) > 128 or not self.identity.isprintable():
            found.append(f"identity {self.identity!r}: must be 1 to 128 printable characters")
        if not DNS_LABEL.fullmatch(self.namespace):
            found.append(f"lease namespace {self.namespace!r}: not a DNS label (lower case, digits, '-')")
        if not DNS_SUBDOMAIN.fullmatch(self.name):
            found.append(f"lease name {self.name!r}: not a DNS subdomain (lower case, digits, '-', '.')")
        if self.lease_duration < 1:
            found.append(f"lease duration {self.lease_duration}: must be at least 1 second")
        if not 0 < self.renew_deadline < self.lease_duration:
            found.append(f"renew deadline {self.renew_deadline}: must be above 0 and below the lease duration "
                         f"({self.lease_duration}), or two replicas could lead at once")
        if not 0 < self.retry_period * JITTER < self.renew_deadline:
            found.append(f"retry period {self.retry_period}: must be above 0 and {JITTER} times it below the "
                         f"renew deadline ({self.renew_deadline}), or a leader gives up before its second try")
        return found


@dataclass(frozen=True)
class ServeSettings:
    output: Path
    app: AppSettings
    host: str
    port: int
    dhcp: Dhcp = Dhcp.proxy
    tftp: Tftp = Tftp.dnsmasq
    tftp_port: int = 69
    shutdown_timeout: float = 10.0  # seconds in-flight requests get on stop
    dnsmasq_binary: str = "dnsmasq"
    access_log: bool = False  # one log line per request; events already record every boot-relevant hit
    workers: int = 1  # HTTP worker processes on the port (supervise/workers.py)
    log_format: LogFormat = LogFormat.text
    worker: int = 0  # which one this process is; 0 is the leader, which owns everything but HTTP
    election: LeaseSettings | None = None  # --leader-elect: PXE and the boot API only while holding the Lease
    service_address: str | None = None  # ADDR/PREFIX the leader holds (cluster/address.py), with --leader-elect
    service_interface: str | None = None  # where it holds it

    @property
    def leader(self) -> bool:
        return self.worker == 0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=_plain)

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return _build(cls, json.loads(text))


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a setting")


def _build(cls: type, data: dict):
    """A settings dataclass from `to_json`'s output, nested dataclasses, paths and enums included."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, kind = data[f.name], hints[f.name]
        options = [t for t in typing.get_args(kind) if t is not type(None)] or [kind]
        target = options[0]
        if value is None:
            values[f.name] = None
        elif dataclasses.is_dataclass(target):
            values[f.name] = _build(target, value)
        elif isinstance(target, type) and issubclass(target, (Enum, Path)):
            values[f.name] = target(value)
        else:
            values[f.name] = value
    return cls(**values)
