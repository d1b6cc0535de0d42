"""System extensions: which ones each node gets, their files as the Flatcar sysext bakery names them,
how systemd-sysupdate follows them, and what `validate` checks about them.

Kubernetes is always the first extension, from `cluster.k8s_version`; `sysexts:` adds more, for every
node or only some roles or nodes. Each is one file under the assets' `sysext/` directory, served at
`/assets/sysext/<file>` and placed as the bakery documents: `/opt/extensions/<name>/<file>` and the
link `/etc/extensions/<name>.raw` (systemd-sysext needs the link's name to match the image's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.cluster.model import Cluster, Node
from app.cluster.problems import Found
from app.yaml_source import Loc

SYSEXT_ARCH = {"amd64": "x86-64", "arm64": "arm64"}  # the bakery's (and systemd's %a) architecture names
KUBERNETES = "kubernetes"
ASSET_DIR = "sysext"  # under the assets directory, and under /assets/ on the wire
SUMS = "SHA256SUMS"  # systemd-sysupdate reads it beside the images of a url-file source
# Flatcar's built-in extensions a bakery one replaces; the bakery masks them with a /dev/null link.
REPLACES = {"containerd": "containerd-flatcar", "docker": "docker-flatcar"}


@dataclass(frozen=True)
class SysextUse:
    """One extension on one node."""

    name: str
    version: str
    arch: str  # the node's: amd64 or arm64

    @property
    def file(self) -> str:
        return f"{self.name}-{self.version}-{SYSEXT_ARCH[self.arch]}.raw"

    @property
    def replaces(self) -> str | None:
        return REPLACES.get(self.name)

    @property
    def update_pattern(self) -> str | None:
        """sysupdate's MatchPattern for patch updates: the version up to its last dot stays, as the
        bakery's `kubernetes-v1.36.@v-%a.raw`; a version without a dot has no patch level to follow."""
        head, dot, _ = self.version.rpartition(".")
        return f"{self.name}-{head}.@v-%a.raw" if dot else None


def applies(roles: list[str], names: list[str], node_role: Any, node_name: Any) -> bool:
    """An entry without roles and nodes is for every node; otherwise a match on either is enough."""
    return (not roles and not names) or node_role in roles or node_name in names


def node_sysexts(cluster: Cluster, node: Node) -> list[SysextUse]:
    """Kubernetes first, then every `sysexts:` entry for this node, in the file's order."""
    uses = [SysextUse(KUBERNETES, cluster.cluster.k8s_version, node.arch)]
    uses += [SysextUse(s.name, s.version, node.arch) for s in cluster.sysexts
             if applies(list(s.roles), list(s.nodes), node.role, node.name)]
    return uses


def cluster_sysexts(cluster: Cluster) -> dict[str, tuple[Loc, SysextUse]]:
    """Every file some node fetches -> where cluster.yaml asks for it (the first place), and the use."""
    files: dict[str, tuple[Loc, SysextUse]] = {}
    for node in cluster.nodes:
        for use in node_sysexts(cluster, node):
            loc = (("cluster", "k8s_version") if use.name == KUBERNETES else
                   ("sysexts", next(i for i, s in enumerate(cluster.sysexts)
                                    if (s.name, s.version) == (use.name, use.version))))
            files.setdefault(use.file, (loc, use))
    return files


# --- checks of the `sysexts:` list (on whatever parsed; see app/cluster/rules.py) ---------------------

def sysext_checks(top: dict, nodes: list[tuple[int, dict]], found: Found) -> None:
    entries = [(i, e) for i, e in enumerate(top.get("sysexts") or []) if e is not None]
    names = {node["name"] for _, node in nodes if "name" in node}
    complete = all("name" in node and "role" in node for _, node in nodes)
    for i, entry in entries:
        if entry.get("name") == KUBERNETES:
            found.add(("sysexts", i, "name"), "Kubernetes comes from cluster.k8s_version (kubernetes-<k8s_version>-"
                      "<arch>.raw): remove this entry, or change k8s_version")
        for k, name in enumerate(entry.get("nodes") or []):
            if name not in names and complete:
                found.add(("sysexts", i, "nodes", k), f"no node is named {name}")
        if complete and "name" in entry and not _targets(entry, nodes):
            found.warn(("sysexts", i), f"{entry['name']} is for no node: no node has these roles or names")
    if complete:
        _conflicts(entries, nodes, found)


def _targets(entry: dict, nodes: list[tuple[int, dict]]) -> list[str]:
    return [node["name"] for _, node in nodes
            if applies(entry.get("roles") or [], entry.get("nodes") or [], node["role"], node["name"])]


def _conflicts(entries: list[tuple[int, dict]], nodes: list[tuple[int, dict]], found: Found) -> None:
    """One extension name, one file per node: /etc/extensions/<name>.raw can point at one image."""
    for n, (i, entry) in enumerate(entries):
        if "name" not in entry or "version" not in entry:
            continue
        for j, other in entries[:n]:
            if other.get("name") != entry["name"] or "version" not in other:
                continue
            shared = sorted(set(_targets(entry, nodes)) & set(_targets(other, nodes)))
            if not shared:
                continue
            on = f"on {', '.join(shared[:3])}{' and more' if len(shared) > 3 else ''}"
            if other["version"] == entry["version"]:
                found.add(("sysexts", i), f"{entry['name']} {entry['version']} is already sysexts[{j}] {on}")
            else:
                found.add(("sysexts", i), f"{entry['name']} {entry['version']} and sysexts[{j}]'s {other['version']} "
                          f"would both be /etc/extensions/{entry['name']}.raw {on}: give them different roles or nodes")


# --- checks against the assets directory (validate --assets, generate) -------------------------------

def bake_hint(use: SysextUse) -> str:
    if use.name == KUBERNETES:
        return f"build the image with --build-arg K8S_VERSION={use.version}"
    return (f"build the image with --build-arg SYSEXTS=\"{use.name}-{use.version}\" (from the sysext bakery), "
            f"or put your own {use.file} there with its line in {SUMS}")


def missing_files(cluster: Cluster, assets: Path) -> list[tuple[Loc, str]]:
    """Each file a node would fetch that the assets lack, with how to get it there."""
    return [(loc, f"{use.file} is not in {assets / ASSET_DIR}: nodes would fail to fetch it; {bake_hint(use)}")
            for file, (loc, use) in sorted(cluster_sysexts(cluster).items(), key=lambda kv: kv[1][0])
            if not (assets / ASSET_DIR / file).is_file()]


def served_sums_problems(cluster: Cluster, assets: Path) -> list[str]:
    """With sysupdate on, nodes read /assets/sysext/SHA256SUMS and fetch the newest file it lists that
    matches their pattern: it must exist, and every file it lists must be served (else a 404)."""
    if not cluster.sysupdate:
        return []
    sums = assets / ASSET_DIR / SUMS
    if not sums.is_file():
        return [f"sysupdate: {sums} is missing: nodes find updates through it (the image writes it; "
                "for your own files, one `sha256sum` line each)"]
    listed = [line.split()[-1].lstrip("*") for line in sums.read_text(errors="replace").splitlines() if line.strip()]
    return [f"sysupdate: {sums} lists {name}, which is not served: a node would pick it and fail with 404 "
            "(list only the files in that directory)" for name in listed if not (sums.parent / name).is_file()]


def asset_checks(cluster: Cluster, assets: Path, found: Found) -> None:
    """Errors for what the nodes could not fetch from these assets."""
    for loc, message in missing_files(cluster, assets):
        found.add(loc, message)
    for message in served_sums_problems(cluster, assets):
        found.add(("sysupdate",), message, key=True)
    for i, entry in enumerate(cluster.sysexts if cluster.sysupdate else []):
        if SysextUse(entry.name, entry.version, "amd64").update_pattern is None:
            found.warn(("sysexts", i, "version"), f"{entry.version} has no patch level (no '.'): "
                       "sysupdate leaves this extension as it is")
