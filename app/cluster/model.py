"""The cluster.yaml model: typed, immutable, with the descriptions editors and docs/configuration.md show."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.cluster.fields import (
    Disk,
    DnsLabel,
    DnsName,
    DnsServers,
    FlatcarVersion,
    GitUrl,
    IfName,
    IPv4,
    IPv4Net,
    K8sVersion,
    Mac,
    Port,
    SshKey,
    SysextName,
    SysextVersion,
    TimeServer,
    Token,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSpec(_Model):
    name: DnsLabel = Field(description="Cluster name, a DNS-1123 label (e.g. `lab`).")
    k8s_version: K8sVersion = Field(description="Kubernetes release `vX.Y.Z`, v1.31 or newer (kubeadm v1beta4).")
    flatcar_version: FlatcarVersion = Field(
        description="Flatcar Container Linux release `X.Y.Z` to install; one of app/cluster/flatcar-releases.txt.")
    flatcar_channel: Literal["stable", "beta", "alpha", "lts"] = Field(
        "stable", description="The channel that release belongs to (LTS releases are `lts`); the image build "
                              "downloads from that channel's server.")
    pod_subnet: IPv4Net = Field(ipaddress.IPv4Network("10.244.0.0/16"), description="Pod network CIDR.")
    service_subnet: IPv4Net = Field(ipaddress.IPv4Network("10.96.0.0/12"), description="Service network CIDR.")
    ssh_authorized_key: SshKey = Field(description="SSH public key installed for user `core` on every node.")
    ssh_authorized_keys: list[SshKey] = Field(default_factory=list, description="More SSH public keys for `core`.")
    api_server_name: DnsName | None = Field(
        None, description="DNS name for the API server; put in its certificate and in the kubeconfig.")
    kubeadm_token: Token | None = Field(
        None, description="Bootstrap token `[a-z0-9]{6}.[a-z0-9]{16}`; generated (and kept) when absent.")

    @property
    def ssh_keys(self) -> list[str]:
        return [self.ssh_authorized_key, *(k for k in self.ssh_authorized_keys if k != self.ssh_authorized_key)]


class Bootstrap(_Model):
    ip: IPv4 = Field(description="The appliance's address on the provisioning network.")
    interface: IfName | None = Field(None, description="Interface dnsmasq answers on; default: the one holding `ip`.")
    http_port: Port = Field(8080, description="Port of the boot HTTP server (iPXE scripts, Ignition, assets).")
    time_server: bool = Field(
        False, description="`serve` also answers NTP (chronyd, port 123) on the provisioning network from this "
                            "appliance's clock, and every node syncs with it first: for a site whose nodes reach "
                            "no time server.")


UefiLoader = Literal["snponly", "ipxe"]
UEFI_LOADER_HELP = ("`snponly` (snponly.efi, ~170 KB: drives the NIC through the firmware's own network driver) "
                    "or `ipxe` (ipxe.efi, ~1 MB, with its own NIC drivers, for firmware whose SNP driver is broken)")


class Pxe(_Model):
    uefi_loader: UefiLoader = Field(
        "snponly", description="The iPXE build x86-64 UEFI machines chainload over TFTP: " + UEFI_LOADER_HELP
                               + "; a node's own `pxe.uefi_loader` wins. See docs/pxe.md.")


class NodePxe(_Model):
    uefi_loader: UefiLoader | None = Field(
        None, description="This node's iPXE build when its UEFI firmware PXE-boots: " + UEFI_LOADER_HELP
                          + "; default: the top-level `pxe.uefi_loader`.")


class Network(_Model):
    cidr: IPv4Net = Field(description="The provisioning network, where nodes and the appliance live.")
    gateway: IPv4 = Field(description="Default gateway given to every node.")
    dns: DnsServers = Field(description="DNS servers given to every node; at least one (Flatcar has no fallback).")
    ntp: list[TimeServer] = Field(
        default_factory=list, description="NTP servers (addresses or DNS names) every node syncs its clock with "
                                          "(`NTP=`); empty: Flatcar's default, the public pool, which an "
                                          "air-gapped site cannot reach.")


PowerWay = Literal["manual", "wol", "redfish", "ipmi"]
BMC_WAYS = ("redfish", "ipmi")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOST_PORT = re.compile(r"(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)(:(?P<port>\d{1,5}))?")
URL = re.compile(r"(?P<scheme>https?)://(?P<rest>[^/\s?#]+)/?")


class Bmc(_Model):
    """A node's baseboard management controller. The password is never in cluster.yaml: only where
    to read it, so neither the output tree nor a log can ever carry it."""

    address: str = Field(description="`host[:port]`; for Redfish also `https://host[:port]` (default https, "
                                     "port 443; IPMI: UDP 623).")
    username: str = Field(min_length=1, description="BMC user name.")
    password_file: str | None = Field(
        None, description="Absolute path of a file holding the password (one line; mount it read-only). "
                          "Exactly one of `password_file` and `password_env`.")
    password_env: str | None = Field(
        None, description="Name of the environment variable holding the password.")
    system: str | None = Field(
        None, description="Redfish: the system's path (`/redfish/v1/Systems/<id>`) or Id; default: the only one.")
    verify_tls: bool = Field(True, description="Redfish over https: check the BMC's certificate.")

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value):
        if not isinstance(value, str) or not value.strip():
            raise ValueError("must be host[:port] or an http(s):// URL, written as a string")
        text = value.strip()
        url = URL.fullmatch(text)
        match = HOST_PORT.fullmatch(url["rest"] if url else text)
        if (url is None and "://" in text) or match is None:
            raise ValueError(f"{text!r} is neither host[:port] nor http(s)://host[:port]")
        if match["port"] and not 0 < int(match["port"]) < 65536:
            raise ValueError(f"port {match['port']} is outside 1-65535")
        return text

    @field_validator("password_file")
    @classmethod
    def _absolute(cls, value):
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r} must be an absolute path (the appliance reads it when it powers "
                             "nodes, from wherever it runs)")
        return value

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value):
        if value is not None and not ENV_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _one_password_source(self):
        if (self.password_file is None) == (self.password_env is None):
            raise ValueError("give exactly one of password_file and password_env")
        return self

    @property
    def is_url(self) -> bool:
        return URL.fullmatch(self.address) is not None


class Node(_Model):
    name: DnsLabel = Field(description="Hostname and Kubernetes node name, a DNS-1123 label, unique.")
    role: Literal["controller", "worker"] = Field(description="`controller` (control plane) or `worker`.")
    mac: Mac = Field(description="MAC of the NIC that PXE-boots; `aa:bb:..`, `aa-bb-..` or `aabb.ccdd.eeff`.")
    ip: IPv4 = Field(description="Static address, inside `network.cidr`, unique.")
    install_disk: Disk = Field(
        description="Disk Flatcar is installed to (wiped): `/dev/disk/by-id/…` or `/dev/disk/by-path/…`; a kernel "
                    "name (`/dev/sda`, `/dev/nvme0n1`) only with `allow_kernel_disk_name`.")
    allow_kernel_disk_name: bool = Field(
        False, description="Accept a kernel name like `/dev/sda` as `install_disk`: such names follow probe "
                           "order, so BMC virtual media, a USB stick or a second controller can take it.")
    arch: Literal["amd64", "arm64"] = Field("amd64", description="CPU architecture.")
    power: PowerWay | None = Field(None, description="How to power this node; default: the top-level `power`.")
    bmc: Bmc | None = Field(None, description="Its BMC; needed with `power: redfish` or `ipmi`.")
    pxe: NodePxe | None = Field(None, description="How this node network-boots; default: the top-level `pxe`.")


class Cilium(_Model):
    wireguard: bool = Field(False, description="Encrypt pod traffic between nodes with WireGuard.")
    kube_proxy_replacement: bool = Field(
        False, description="Cilium replaces kube-proxy (kubeadm skips kube-proxy; Cilium talks to the VIP).")


class GitOps(_Model):
    repo: GitUrl = Field(description="Git repository Argo CD syncs from (https://, ssh:// or git@host:path).")
    revision: str = Field("main", min_length=1, description="Branch, tag or commit.")
    path: str = Field(".", min_length=1, description="Directory in the repository with the root app's manifests.")


class Sysext(_Model):
    name: SysextName = Field(description="Extension name as the Flatcar sysext bakery names it (`containerd`, "
                                         "`nvidia-runtime`), or your own; `kubernetes` comes from `k8s_version`.")
    version: SysextVersion = Field(description="Its version as in the file name `<name>-<version>-<arch>.raw` "
                                               "(`2.0.4`; Kubernetes-style ones keep their `v`).")
    roles: list[Literal["controller", "worker"]] = Field(
        default_factory=list, description="Only nodes with these roles get it (with `nodes`: either matches).")
    nodes: list[DnsLabel] = Field(
        default_factory=list, description="Only these nodes get it (with `roles`: either matches); "
                                          "neither set: every node.")


class Cluster(_Model):
    """A whole cluster.yaml. The first controller in `nodes` runs `kubeadm init`."""

    model_config = ConfigDict(title="bootstrap-node cluster.yaml")

    cluster: ClusterSpec = Field(description="Cluster-wide settings.")
    control_plane_vip: IPv4 | None = Field(
        None, description="Virtual IP of the API server (kube-vip); required with more than one controller.")
    bootstrap: Bootstrap = Field(description="The appliance itself.")
    network: Network = Field(description="The provisioning network.")
    nodes: list[Node] = Field(description="The machines, in order; the first controller bootstraps the cluster.")
    cni: Literal["flannel", "cilium", "none"] = Field(
        "flannel", description="Pod network: `flannel`, `cilium`, or `none` (bring your own in add-ons).")
    cilium: Cilium | None = Field(None, description="Cilium options; only with `cni: cilium`.")
    gitops: GitOps | None = Field(None, description="Hand the cluster to Argo CD and this repository.")
    sysexts: list[Sysext] = Field(
        default_factory=list, description="More system extensions for every node, or for some roles or nodes; "
                                          "each must be in the assets under `sysext/` (see docs/sysexts.md).")
    sysupdate: bool = Field(
        False, description="Nodes take patch updates of their sysexts from the appliance's `/assets/sysext/` "
                           "while it serves (systemd-sysupdate; see docs/sysexts.md).")
    reboots: Literal["kured", "none"] = Field(
        "kured", description="Who reboots nodes for OS and sysext updates: `kured` (built-in add-on; one node at a "
                             "time, drained first) or `none` (updates wait for a reboot you make).")
    power: PowerWay = Field(
        "manual", description="How nodes are powered on: `manual` (`init` asks you), `wol` (Wake-on-LAN), "
                              "`redfish` or `ipmi` (through each node's `bmc`); a node's own `power` wins.")
    pxe: Pxe | None = Field(None, description="How machines network-boot (the UEFI iPXE build); see docs/pxe.md.")

    @property
    def controllers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "controller"]

    @property
    def workers(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "worker"]

    @property
    def bootstrap_node(self) -> Node:
        """The node that runs `kubeadm init`."""
        return self.controllers[0]

    @property
    def api_host(self) -> str:
        """Where clients reach the API: the DNS name, else the VIP, else the only controller."""
        if self.cluster.api_server_name:
            return self.cluster.api_server_name
        return str(self.control_plane_vip or self.bootstrap_node.ip)

    @property
    def control_plane_address(self) -> str:
        """The address the API answers on (VIP or the single controller), for kubeadm's endpoint."""
        return str(self.control_plane_vip or self.bootstrap_node.ip)

    def power_of(self, node: Node) -> str:
        """The way `node` is powered: its own `power`, else the cluster's."""
        return node.power or self.power

    @property
    def default_uefi_loader(self) -> UefiLoader:
        """What UEFI machines chainload unless their node says otherwise (strangers too)."""
        return (self.pxe or Pxe()).uefi_loader

    def uefi_loader_of(self, node: Node) -> UefiLoader:
        """The iPXE build `node` chainloads when its x86-64 UEFI firmware PXE-boots."""
        return (node.pxe and node.pxe.uefi_loader) or self.default_uefi_loader
