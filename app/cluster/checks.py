"""Everything `validate` checks: structure and types (pydantic), unknown keys, and the rules that
span fields (uniqueness, addresses inside the network, subnet overlap, quorum).

Each section and node is validated on its own so one bad field never hides the others: a run
reports every problem in the file at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import stat
import typing
from collections.abc import Iterator

from pydantic import BaseModel, TypeAdapter, ValidationError

from app.cluster.fields import IPv4, yaml_type
from app.cluster.model import BMC_WAYS, Bootstrap, Cluster, ClusterSpec, Network, Node
from app.cluster.problems import Problem, format_loc
from app.yaml_source import Loc, Source

SECTIONS: dict[str, type[BaseModel]] = {"cluster": ClusterSpec, "bootstrap": Bootstrap, "network": Network}


class _Found:
    """Collects problems with their source positions."""

    def __init__(self, source: Source, file: str):
        self.source, self.file, self.items = source, file, []

    def add(self, loc: Loc, message: str, *, severity="error", key: bool = False) -> None:
        pos = self.source.pos(loc, key=key)
        self.items.append(Problem(self.file, pos.line, pos.column, format_loc(loc), message, severity))

    def warn(self, loc: Loc, message: str) -> None:
        self.add(loc, message, severity="warning")


def check(source: Source, file: str) -> tuple[Cluster | None, list[Problem]]:
    """All problems in `source`, and the Cluster when there is no error."""
    found = _Found(source, file)
    for loc, first, _ in source.duplicates:
        found.add(loc, f"key appears twice (first at line {first.line}); the later value would win", key=True)
    data = source.data
    if not isinstance(data, dict):
        found.add((), f"the file must be a mapping with cluster, bootstrap, network and nodes, not {yaml_type(data)}")
        return None, found.items
    _unknown_keys(Cluster, data, (), found)
    parts = {name: _validate(model, data.get(name), (name,), found) for name, model in SECTIONS.items()}
    vip = _validate(TypeAdapter(IPv4 | None), data.get("control_plane_vip"), ("control_plane_vip",), found)
    nodes = _nodes(data.get("nodes"), found)
    _addon_sections(data, found)
    _cross_checks(parts["cluster"], parts["bootstrap"], parts["network"], vip, nodes, found)
    _power_checks(data.get("power", "manual"), nodes, found)
    problems = sorted(found.items, key=lambda p: (p.line, p.column, p.path))
    if any(p.severity == "error" for p in problems):
        return None, problems
    return Cluster.model_validate(data), problems


def _validate(model, value, loc: Loc, found: _Found):
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    if value is None and not isinstance(model, TypeAdapter):
        found.add(loc, "required section is missing", key=True)
        return None
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        for err in exc.errors():
            if err["type"] != "extra_forbidden":  # reported with suggestions by _unknown_keys
                found.add(loc + tuple(err["loc"]), _message(err), key=err["type"] == "missing")
        return None


def _message(err: dict) -> str:
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(err["ctx"]["error"])
    if kind == "literal_error":
        allowed = [a.strip(" '") for a in err["ctx"]["expected"].replace(" or ", ", ").split(",")]
        near = difflib.get_close_matches(str(value), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        return f"{value!r} is not one of: {', '.join(allowed)}{hint}"
    expected = {"model_type": "a mapping", "dict_type": "a mapping", "list_type": "a list",
                "string_type": "a string", "int_type": "a number", "bool_type": "true or false"}
    if kind in expected:
        return f"must be {expected[kind]}, not {yaml_type(value)}"
    return err["msg"]


def _addon_sections(data: dict, found: _Found) -> None:
    """cni, cilium and gitops: typed by the model; here, what spans them."""
    for key in ("cni", "cilium", "gitops", "power"):
        if key in data:
            _validate(TypeAdapter(Cluster.model_fields[key].annotation), data[key], (key,), found)
    if data.get("cilium") is not None and data.get("cni", "flannel") != "cilium":
        found.add(("cilium",), f"cilium options need `cni: cilium` (cni is {data.get('cni', 'flannel')})", key=True)


def _nodes(value, found: _Found) -> list[tuple[int, Node]]:
    if value is None:
        found.add(("nodes",), "required section is missing: list the machines to install", key=True)
        return []
    if not isinstance(value, list):
        found.add(("nodes",), f"must be a list of nodes, not {yaml_type(value)}")
        return []
    parsed = [(i, _validate(Node, item, ("nodes", i), found)) for i, item in enumerate(value)]
    return [(i, node) for i, node in parsed if node is not None]


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if found := _model_in(arg):
            return found
    return None


def _unknown_keys(model: type[BaseModel], data, loc: Loc, found: _Found) -> None:
    if isinstance(data, list):
        for i, item in enumerate(data):
            _unknown_keys(model, item, loc + (i,), found)
        return
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            near = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean '{near[0]}'?" if near else f" (allowed: {', '.join(fields)})"
            found.add(loc + (key,), f"unknown key '{key}'{hint}", key=True)
        elif sub := _model_in(fields[key].annotation):
            _unknown_keys(sub, value, loc + (key,), found)


def _cross_checks(spec, boot, net, vip, nodes, found: _Found) -> None:
    _unique(nodes, "name", found)
    _unique(nodes, "mac", found)
    _unique(nodes, "ip", found)
    controllers = [(i, n) for i, n in nodes if n.role == "controller"]
    if nodes and not controllers:
        found.add(("nodes",), "at least one node must have role: controller")
    if len(controllers) > 1 and vip is None:
        found.add(("control_plane_vip",), f"required with {len(controllers)} controllers: "
                  "the API server needs one address that moves between them", key=True)
    elif len(controllers) == 1:
        found.warn(("nodes", controllers[0][0], "role"),
                   "only one controller: the control plane has no redundancy")
    elif len(controllers) > 1 and len(controllers) % 2 == 0:
        found.warn(("nodes", controllers[-1][0], "role"), f"{len(controllers)} controllers: an even "
                   "number adds no etcd fault tolerance over one fewer; use an odd number")
    if net is not None:
        _addresses(net, boot, vip, nodes, found)
    if spec is not None:
        _subnets(spec, net, found)


def _unique(nodes: list[tuple[int, Node]], attr: str, found: _Found) -> None:
    seen: dict = {}
    for i, node in nodes:
        value = getattr(node, attr)
        if value in seen:
            j, other = seen[value]
            found.add(("nodes", i, attr), f"{value} is already used by nodes[{j}] ({other.name})")
        else:
            seen[value] = (i, node)


def _usable_in(ip, network: ipaddress.IPv4Network) -> str | None:
    """Why `ip` cannot be a host on `network`, or None when it can."""
    if ip not in network:
        return f"{ip} is outside network.cidr {network}"
    if network.prefixlen < 31 and ip in (network.network_address, network.broadcast_address):
        kind = "network" if ip == network.network_address else "broadcast"
        return f"{ip} is the {kind} address of {network}"
    return None


def _addresses(net: Network, boot, vip, nodes, found: _Found) -> None:
    fixed: list[tuple[Loc, object, str]] = [(("network", "gateway"), net.gateway, "network.gateway")]
    if boot is not None:
        fixed.append((("bootstrap", "ip"), boot.ip, "bootstrap.ip"))
    if vip is not None:
        fixed.append((("control_plane_vip",), vip, "control_plane_vip"))
    for n, (loc, ip, _) in enumerate(fixed):
        if why := _usable_in(ip, net.cidr):
            found.add(loc, why)
        for _, other, other_name in fixed[:n]:
            if ip == other:
                found.add(loc, f"{ip} is the same address as {other_name}")
    for i, node in nodes:
        loc = ("nodes", i, "ip")
        if why := _usable_in(node.ip, net.cidr):
            found.add(loc, why)
        for _, ip, name in fixed:
            if node.ip == ip:
                found.add(loc, f"{node.ip} is already {name}")


def _subnets(spec: ClusterSpec, net, found: _Found) -> None:
    nets: list[tuple[Loc, ipaddress.IPv4Network, str]] = [
        (("cluster", "pod_subnet"), spec.pod_subnet, "cluster.pod_subnet"),
        (("cluster", "service_subnet"), spec.service_subnet, "cluster.service_subnet")]
    if net is not None:
        nets.append((("network", "cidr"), net.cidr, "network.cidr"))
    for n, (loc, subnet, _) in enumerate(nets[:2]):
        for _, other, other_name in nets[n + 1:]:
            if subnet.overlaps(other):
                found.add(loc, f"{subnet} overlaps {other_name} {other}")


def iter_field_paths(model: type[BaseModel] = Cluster, prefix: str = "") -> Iterator[str]:
    """Every documented field path (`nodes[].mac`), for the README reference and its test."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        if sub := _model_in(info.annotation):
            is_list = typing.get_origin(info.annotation) is list
            yield from iter_field_paths(sub, f"{path}[]." if is_list else f"{path}.")


def _power_checks(default_way, nodes: list[tuple[int, Node]], found: _Found) -> None:
    """Each node powered through a BMC has one, of the right shape, and its password is where
    cluster.yaml says (the file or variable is read at power time; here we only look for it)."""
    for i, node in nodes:
        way = node.power or default_way
        if way not in BMC_WAYS:
            if node.bmc is not None:
                found.warn(("nodes", i, "bmc"), f"unused: this node is powered by `{way}`, not through its BMC")
            continue
        if node.bmc is None:
            found.add(("nodes", i, "power") if node.power else ("nodes", i),
                      f"power: {way} needs `bmc: {{address, username, password_file or password_env}}` "
                      f"on {node.name}")
            continue
        loc = ("nodes", i, "bmc")
        if way == "ipmi" and node.bmc.is_url:
            found.add(loc + ("address",), f"IPMI takes host[:port], not a URL ({node.bmc.address})")
        if node.bmc.password_env is not None and node.bmc.password_env not in os.environ:
            found.add(loc + ("password_env",), f"environment variable {node.bmc.password_env} is not set")
        if node.bmc.password_file is not None:
            _password_file(node.bmc.password_file, loc + ("password_file",), found)


def _password_file(path: str, loc: Loc, found: _Found) -> None:
    try:
        info = os.stat(path)
    except OSError as exc:
        found.add(loc, f"cannot read {path}: {exc.strerror}")
        return
    if not stat.S_ISREG(info.st_mode):
        found.add(loc, f"{path} is not a file")
    elif not os.access(path, os.R_OK):
        found.add(loc, f"cannot read {path}: permission denied")
    elif info.st_mode & 0o077:
        found.warn(loc, f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o}); chmod 600 it")
