"""Checks of how nodes are powered: each node powered through a BMC has one, of the right shape, and its
password is where cluster.yaml says (the file or variable is read at power time; here we only look)."""

from __future__ import annotations

import os
import stat

from app.cluster.model import BMC_WAYS
from app.cluster.problems import Found
from app.cluster.rules import Nodes, Parsed
from app.yaml_source import Loc


def power_checks(top: Parsed, nodes: Nodes, found: Found) -> None:
    default_way = top.get("power") or "manual"
    for i, node in nodes:
        way = node.get("power") or default_way
        bmc = node.get("bmc")
        if way not in BMC_WAYS:
            if bmc is not None:
                found.warn(("nodes", i, "bmc"), f"unused: this node is powered by `{way}`, not through its BMC")
            continue
        if bmc is None:
            found.add(("nodes", i, "power") if node.get("power") else ("nodes", i),
                      f"power: {way} needs `bmc: {{address, username, password_file or password_env}}` "
                      f"on {node.get('name', f'nodes[{i}]')}")
            continue
        _bmc(way, bmc, ("nodes", i, "bmc"), found)


def _bmc(way: str, bmc: Parsed, loc: Loc, found: Found) -> None:
    address = str(bmc.get("address") or "")
    if way == "ipmi" and "://" in address:
        found.add(loc + ("address",), f"IPMI takes host[:port], not a URL ({address})")
    elif address.lower().startswith("http://"):
        found.warn(loc + ("address",), f"{address} is plain HTTP: the BMC's password crosses the network "
                                       "readable by anyone on the path; use https:// (bmc.verify_tls: false "
                                       "for a self-signed certificate)")
    sources = [key for key in ("password_file", "password_env") if bmc.get(key)]
    if len(sources) != 1:
        found.add(loc, "give exactly one of password_file and password_env")
    env = bmc.get("password_env")
    if env and env not in os.environ:
        found.add(loc + ("password_env",), f"environment variable {env} is not set")
    if bmc.get("password_file"):
        _password_file(str(bmc["password_file"]), loc + ("password_file",), found)


def _password_file(path: str, loc: Loc, found: Found) -> None:
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
