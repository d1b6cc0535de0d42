"""The whole output tree for a Cluster: a pure function from inputs to {relative path: (bytes, mode)}.

Inputs are the Cluster, its Secrets, the templates and a few facts about the appliance (where the
output lives, which iPXE binaries and sysext hashes it has). No clock, no network, no writes: the
same inputs always give the same bytes, so `generate` can diff, re-run and fail without harm.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from app import pki
from app.cluster import Cluster, Node
from app.cluster.sysexts import ASSET_DIR as SYSEXT_DIR
from app.cluster.sysexts import SysextUse, node_sysexts
from app.ignition import butane
from app.ignition import rules as ignition
from app.layout import CHRONY_CONF, CREDENTIAL_PATH, DNSMASQ_CONF, FLATCAR_ASSET_DIR, RUN, UEFI_LOADERS
from app.render.images import KUBE_VIP_IMAGE, registry_mirrors, sandbox_image
from app.render.pxe import pxe_variables, uefi_loaders_file
from app.render.templates import TemplateError, Templates

NIC = "lan0"  # the provisioning NIC's name on installed nodes (set by a .link file, by MAC)
REFUSE_INIT_EXIT = 3  # kubeadm.sh's exit status when a cluster already answers (systemd does not retry it)
SERIAL_CONSOLE = {"amd64": "ttyS0", "arm64": "ttyAMA0"}  # arm64 boards' PL011 UART is ttyAMA0
MAX_CLOCK_SKEW = 60  # seconds between a node's clock and the appliance's before the install reports it
TOKEN_TTL = "2h0m0s"  # the bootstrap token's lifetime, as kubeadm's kubeadm-certs Secret
SECRET = 0o600
PUBLIC = 0o644

Files = dict[str, tuple[bytes, int]]


class RenderError(Exception):
    """Rendering failed; nothing may be written. The message names the template or node."""


@dataclass(frozen=True)
class Appliance:
    """What rendering needs to know about the appliance itself."""

    output_dir: Path  # absolute; dnsmasq's tftp-root lives under it
    ipxe_binaries: dict[str, bytes] = field(default_factory=dict)  # tftp/ file name -> contents
    sysext_hashes: dict[str, str] = field(default_factory=dict)  # sysext file name -> "sha512-<hex>"
    ignition_schemas: Path | None = None  # official JSON Schemas, checked when given
    # The cluster runs (`wait` saw its API with this CA; app/cluster_record.py): the first controller joins it
    # like the others instead of running `kubeadm init` a second time.
    cluster_exists: bool = False
    join_tokens: dict[str, str] = field(default_factory=dict)  # node name -> token minted for its join
    # controller -> the certificate key of the kubeadm-certs upload made for its later join
    certificate_keys: dict[str, str] = field(default_factory=dict)


def render_tree(cluster: Cluster, secrets: pki.Secrets, templates: Templates, appliance: Appliance) -> Files:
    base = cluster_variables(cluster, secrets, appliance)
    files: Files = {}
    for path, (data, mode) in pki.to_files(secrets).items():
        files[f"credentials/{path}"] = (data, mode)
    server = f"https://{cluster.api_host}:6443"
    files["credentials/admin.kubeconfig"] = (pki.admin_kubeconfig(secrets, server, cluster.cluster.name), SECRET)
    files.update(_all_node_files(cluster, base, templates, appliance))
    files[DNSMASQ_CONF] = (_render(templates, "dnsmasq.conf.tmpl", base).encode(), PUBLIC)
    if cluster.bootstrap.time_server:
        files[CHRONY_CONF] = (_render(templates, "chrony.conf.tmpl", base).encode(), PUBLIC)
    files[f"matchbox/{UEFI_LOADERS}"] = (uefi_loaders_file(cluster), PUBLIC)
    for name, data in sorted(appliance.ipxe_binaries.items()):
        files[f"tftp/{name}"] = (data, PUBLIC)
    return files


# Nodes render independently and most of `generate`'s time is theirs (Butane, Ignition's rules):
# from this many nodes on, they are rendered by one forked process per core, in contiguous runs
# whose files are merged in node order (the same bytes, the same first error as one process).
PARALLEL_FROM = 200
_JOB: tuple | None = None  # (cluster, base, templates, appliance), inherited by the forked workers


def _all_node_files(cluster: Cluster, base: dict, templates: Templates, appliance: Appliance) -> Files:
    nodes, workers = cluster.nodes, min(os.cpu_count() or 1, 8)
    # Forking is safe only from a process with one thread: another's locks would be copied held.
    if len(nodes) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1 \
            or "fork" not in multiprocessing.get_all_start_methods():
        return _node_run(cluster, base, templates, appliance, range(len(nodes)))
    global _JOB
    _JOB = (cluster, base, templates, appliance)
    step = -(-len(nodes) // (workers * 4))  # a few runs per worker, so one slow run does not idle the rest
    runs = [range(i, min(i + step, len(nodes))) for i in range(0, len(nodes), step)]
    files: Files = {}
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            for part in pool.map(_forked_run, runs):  # in order: the first failing node's error is raised
                files.update(part)
    finally:
        _JOB = None
    return files


def _forked_run(indices: range) -> Files:
    cluster, base, templates, appliance = _JOB
    return _node_run(cluster, base, templates, appliance, indices)


def _node_run(cluster: Cluster, base: dict, templates: Templates, appliance: Appliance, indices: range) -> Files:
    files: Files = {}
    for i in indices:
        files.update(_node_files(cluster, cluster.nodes[i], base, templates, appliance))
    return files


def cluster_variables(cluster: Cluster, secrets: pki.Secrets, appliance: Appliance) -> dict:
    spec, boot, net = cluster.cluster, cluster.bootstrap, cluster.network
    url = f"http://{boot.ip}:{boot.http_port}"
    sans = [cluster.control_plane_address] + ([spec.api_server_name] if spec.api_server_name else [])
    return {
        # The seed's names, kept so users' templates keep working.
        "BOOTSTRAP_IP": str(boot.ip), "CLUSTER_NAME": spec.name,
        "CONTROL_PLANE_VIP": str(cluster.control_plane_vip or ""), "K8S_VERSION": spec.k8s_version,
        "FLATCAR_VERSION": spec.flatcar_version, "POD_SUBNET": str(spec.pod_subnet),
        "SERVICE_SUBNET": str(spec.service_subnet), "SSH_KEY": spec.ssh_authorized_key,
        "KUBEADM_TOKEN": secrets.bootstrap_token,
        # More, for the built-in templates.
        "cluster": cluster, "BOOTSTRAP_URL": url, "HTTP_PORT": boot.http_port, "INTERFACE": boot.interface or "",
        "SSH_KEYS": spec.ssh_keys, "FLATCAR_CHANNEL": spec.flatcar_channel,
        "K8S_MINOR": ".".join(spec.k8s_version.split(".")[:2]), "API_SERVER_NAME": spec.api_server_name or "",
        "CONTROL_PLANE_ENDPOINT": f"{cluster.control_plane_address}:6443", "API_SANS": sans,
        "CA_CERT_HASH": pki.ca_pin(secrets.ca_crt), "NO_TAINTS": not cluster.workers,
        "SKIP_KUBE_PROXY": cluster.cni == "cilium" and bool(cluster.cilium and cluster.cilium.kube_proxy_replacement),
        "GATEWAY": str(net.gateway), "DNS": [str(d) for d in net.dns],
        "NTP": [str(boot.ip)] * boot.time_server + [s for s in net.ntp if s != str(boot.ip)],
        "NETWORK_CIDR": str(net.cidr), "RUN_DIR": str(appliance.output_dir / RUN),
        "NODE_PREFIX": net.cidr.prefixlen,
        "NETWORK_ADDRESS": str(net.cidr.network_address), "NETMASK": str(net.cidr.netmask),
        "TFTP_ROOT": str(appliance.output_dir / "tftp"), "NIC": NIC, "KUBE_VIP_IMAGE": KUBE_VIP_IMAGE,
        "secrets": secrets, "CERTIFICATE_KEY": secrets.certificate_key, "TOKEN_TTL": TOKEN_TTL,
        "CREDENTIAL_PATH": CREDENTIAL_PATH, "REFUSE_INIT_EXIT": REFUSE_INIT_EXIT, "MAX_CLOCK_SKEW": MAX_CLOCK_SKEW,
        "REBOOTS": cluster.reboots,
        # containerd: pull through the appliance's /v2/ first, upstream after; kubeadm's pause image.
        "REGISTRY_MIRRORS": registry_mirrors(), "SANDBOX_IMAGE": sandbox_image(spec.k8s_version),
        **pxe_variables(cluster),  # dnsmasq.conf: which iPXE build UEFI machines chainload
    }


def node_variables(cluster: Cluster, node: Node, base: dict, appliance: Appliance) -> dict:
    sysexts = [sysext_variables(use, base["BOOTSTRAP_URL"], appliance, cluster.sysupdate)
               for use in node_sysexts(cluster, node)]
    asset_dir = FLATCAR_ASSET_DIR[node.arch]
    initialises = node is cluster.bootstrap_node and not appliance.cluster_exists
    return {
        **base, "node": node, "NODE_NAME": node.name, "NODE_IP": str(node.ip), "NODE_MAC": node.mac,
        "NODE_ROLE": node.role, "NODE_DISK": node.install_disk, "NODE_ARCH": node.arch,
        # The node that runs `kubeadm init`: the first controller, until the cluster exists.
        "IS_BOOTSTRAP": initialises, "KUBEADM_ACTION": "init" if initialises else "join",
        "KUBEADM_TOKEN": appliance.join_tokens.get(node.name, base["KUBEADM_TOKEN"]),
        "CERTIFICATE_KEY": appliance.certificate_keys.get(node.name, base["CERTIFICATE_KEY"]),
        "SERIAL_CONSOLE": SERIAL_CONSOLE[node.arch],
        "EXISTING_API_URLS": _elsewhere(cluster, node),
        "FLATCAR_BASE_URL": f"{base['BOOTSTRAP_URL']}/assets/{asset_dir}",
        "FLATCAR_ASSETS": f"/assets/{asset_dir}/{cluster.cluster.flatcar_version}",
        # Kubernetes' (SYSEXT, kept for users' templates) and every extension this node gets.
        "SYSEXT": sysexts[0], "SYSEXTS": sysexts, "SYSUPDATE": cluster.sysupdate,
    }


def _elsewhere(cluster: Cluster, node: Node) -> list[str]:
    """Where the init script looks for a cluster that already answers (never a second `init`): the
    control-plane address and every other controller, not this node itself."""
    hosts = dict.fromkeys([cluster.control_plane_address] + [str(c.ip) for c in cluster.controllers])
    return [f"https://{host}:6443" for host in hosts if host != str(node.ip)]


def sysext_variables(use: SysextUse, bootstrap_url: str, appliance: Appliance, sysupdate: bool) -> dict:
    """How the templates place one extension; `update_pattern` is its sysupdate MatchPattern when updates
    are on. Keys are never a dict method's name: Jinja's `ext.update` would find dict.update first."""
    return {"name": use.name, "version": use.version, "file": use.file,
            "url": f"{bootstrap_url}/assets/{SYSEXT_DIR}/{use.file}", "source": f"{bootstrap_url}/assets/{SYSEXT_DIR}/",
            "hash": appliance.sysext_hashes.get(use.file, ""), "replaces": use.replaces,
            "update_pattern": use.update_pattern if sysupdate else None}


def _node_files(cluster: Cluster, node: Node, base: dict, templates: Templates, appliance: Appliance) -> Files:
    v = node_variables(cluster, node, base, appliance)
    kubeadm = _render(templates, f"kubeadm/{v['KUBEADM_ACTION']}.yaml.tmpl", v)
    _check_yaml(kubeadm, templates.origin(f"kubeadm/{v['KUBEADM_ACTION']}.yaml.tmpl"), node)
    v["KUBEADM_CONFIG"] = kubeadm
    if node.role == "controller":
        v["CONTROL_PLANE_FILES"] = _control_plane_files(cluster, v, templates)
    final = "bootstrap" if v["IS_BOOTSTRAP"] else node.role
    files: Files = {}
    for stage, template, ign_id, selector in (
            ("install", "install", f"{node.name}-install", {"mac": node.mac}),
            ("installed", final, node.name, {"mac": node.mac, "os": "installed"})):
        stage_vars = {**v, "STAGE": stage, "PROFILE_ID": ign_id, "GROUP_ID": ign_id,
                      "IGNITION_ID": f"{ign_id}.ign", "SELECTOR": selector}
        config = _ignition(templates, f"ignition/{template}.yaml.tmpl", stage_vars, node, appliance)
        files[f"matchbox/ignition/{ign_id}.ign"] = (config, SECRET)
        profile = "install" if stage == "install" else "final"
        files[f"matchbox/profiles/{ign_id}.json"] = _json(templates, f"profiles/{profile}.json.tmpl", stage_vars)
        files[f"matchbox/groups/{ign_id}.json"] = _json(templates, "groups/node.json.tmpl", stage_vars)
    return files


def _control_plane_files(cluster: Cluster, v: dict, templates: Templates) -> list[tuple[str, str]]:
    """The first controller gets the CA set (kubeadm init uses pre-placed CAs); the others get none:
    they fetch it from the cluster with the certificate key (least secret per node)."""
    s: pki.Secrets = v["secrets"]
    files = [("pki/ca.crt", s.ca_crt), ("pki/ca.key", s.ca_key), ("pki/sa.key", s.sa_key), ("pki/sa.pub", s.sa_pub),
             ("pki/front-proxy-ca.crt", s.front_proxy_ca_crt), ("pki/front-proxy-ca.key", s.front_proxy_ca_key),
             ("pki/etcd/ca.crt", s.etcd_ca_crt), ("pki/etcd/ca.key", s.etcd_ca_key)]
    out = [(path, data.decode()) for path, data in files] if v["IS_BOOTSTRAP"] else []
    if cluster.control_plane_vip is not None:
        manifest = _render(templates, "kube-vip/kube-vip.yaml.tmpl", v)
        _check_yaml(manifest, templates.origin("kube-vip/kube-vip.yaml.tmpl"), v["node"])
        out.append(("manifests/kube-vip.yaml", manifest))
    return out


def _render(templates: Templates, name: str, variables: dict) -> str:
    try:
        return templates.render(name, variables)
    except TemplateError as exc:
        node = variables.get("NODE_NAME")
        raise RenderError(f"{exc}{f' (rendering for node {node})' if node else ''}") from None


# LibYAML when PyYAML was built with it: this check runs for every node.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_yaml(text: str, origin: str, node: Node) -> None:
    try:
        list(yaml.load_all(text, Loader=_YAML_LOADER))
    except yaml.YAMLError as exc:
        raise RenderError(f"{origin}: rendered for node {node.name} is not valid YAML: {exc}") from None


def _json(templates: Templates, name: str, variables: dict) -> tuple[bytes, int]:
    text = _render(templates, name, variables)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RenderError(f"{templates.origin(name)}: rendered for node {variables['NODE_NAME']} is not "
                          f"valid JSON: {exc.msg} at line {exc.lineno} of the output") from None
    return (json.dumps(data, indent=2) + "\n").encode(), PUBLIC


def _ignition(templates: Templates, name: str, variables: dict, node: Node, appliance: Appliance) -> bytes:
    text = _render(templates, name, variables)
    try:
        config = butane.translate(text, name=name).config
    except butane.ButaneError as exc:
        raise RenderError(f"{templates.origin(name)} rendered for node {node.name} is not valid Butane:\n"
                          f"{exc}{_context(text, exc)}") from None
    # translate() already ran Ignition's own rules (strict: any report fails); the official JSON
    # Schemas are the one check left, when given.
    problems = ignition.schema_errors(config, appliance.ignition_schemas) if appliance.ignition_schemas else []
    if problems:
        raise RenderError(f"{templates.origin(name)} for node {node.name}: invalid Ignition:\n" + "\n".join(problems))
    return ignition.dumps(config)


def _context(text: str, exc: butane.ButaneError) -> str:
    """Show the rendered lines a Butane report points at: a template's own lines differ."""
    lines = text.splitlines()
    shown = []
    for report in exc.reports:
        if report.lineno and 0 < report.lineno <= len(lines):
            shown.append(f"  rendered line {report.lineno}: {lines[report.lineno - 1].strip()}")
    return ("\n" + "\n".join(shown)) if shown else ""
