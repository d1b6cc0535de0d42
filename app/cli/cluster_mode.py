"""`serve --from-cluster`'s glue: how the cluster's objects become the tree serve reads.

Here, in the CLI layer, because it joins three lower parts that must not import each other: `unpivot`'s
reading and export (app/pivot, layer 4), `generate` (layer 4) and serve (layer 3), which gets the
result as a plain `rebuild` callable (app/serve/cluster/cluster_mode.py).

The first render exports the cluster's state exactly as `unpivot` does (cluster.yaml, templates/,
credentials/: old-or-new, into an absent or empty --output) and marks the tree as cluster mode's;
every render (that one included) then runs `generate` on it, the day-2 path, which switches the
tree atomically. Later renders rewrite cluster.yaml and, when the templates ConfigMap changed, swap
templates/ whole; the credentials stay the ones exported at start (a changed Secret is logged, and
taken by a pod that starts on an empty --output: see docs/cluster-mode.md). Join tokens are minted
with the client serve reads the cluster with: in a pod, its ServiceAccount.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from pathlib import Path

from app.atomic_file import atomic_write
from app.cluster import InvalidConfig, SourceError, load_cluster
from app.cluster.machines import GROUP, PROVISIONING_CLUSTERS, VERSION, MachineError
from app.cluster.model import Cluster
from app.events import Event, EventKind
from app.generate import generate
from app.generations import OutputError
from app.layout import CREDENTIALS
from app.linux_calls import exchange
from app.pivot.state import CREDENTIALS_SECRET, TEMPLATES_CONFIGMAP, State, StateError
from app.pivot.unpivot import CLUSTER_YAML, FOREIGN, TEMPLATES, cluster_yaml, export, read_cluster
from app.render.tree import RenderError
from app.serve.cluster.cluster_mode import Hooks, RebuildFailed
from app.serve.cluster.machine_watch import Report
from app.serve.cluster.settings_watch import Target
from app.wait import kube

MARKER = ".from-cluster"  # in --output: this tree is cluster mode's, made from namespace <contents>
log = logging.getLogger("bootstrap_node.cluster")


def watched(namespace: str) -> list[Target]:
    """What a render reads besides the Machines and may change while serve runs (settings_watch)."""
    return [Target(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PROVISIONING_CLUSTERS}"),
            Target(f"/api/v1/namespaces/{namespace}/configmaps", TEMPLATES_CONFIGMAP)]


class Rebuild:
    """The `rebuild` callable: read the namespace's objects, render, switch. RebuildFailed, nothing
    changed. `refused` holds, after each render, MAC -> why a Machine's BMC was not used (a password
    in a file or variable of the pod: app/pivot/bmc.py); the status loop reports it as its lastError."""

    def __init__(self, api, namespace: str, output: Path, assets: Path, ipxe_dir: Path):
        self.api, self.namespace, self.output, self.assets, self.ipxe_dir = api, namespace, output, assets, ipxe_dir
        self.refused: dict[str, str] = {}

    def __call__(self) -> str:
        output, refused = self.output, {}
        try:
            cluster, state = read_cluster(self.api, self.namespace, bmc_passwords(output), refused)
            text = cluster_yaml(cluster)
            cluster = checked(text, output.parent)
            if not (output / MARKER).is_file():
                export(cluster, state, output, dt.datetime.now(dt.UTC))
                atomic_write(output / MARKER, self.namespace.encode(), 0o644)
            else:
                atomic_write(output / CLUSTER_YAML, text, 0o644)
                take_templates(output / TEMPLATES, state.templates)
                if stale := stale_credentials(output, state):
                    log.warning("cluster mode: Secret %s changed (%s) since this --output was made: not taken "
                                "while it runs; restart the pods to take it (docs/cluster-mode.md)",
                                CREDENTIALS_SECRET, ", ".join(stale))
            templates = output / TEMPLATES
            result = generate(cluster, output, templates if templates.is_dir() else None, assets=self.assets,
                              ipxe_dir=self.ipxe_dir, join_api=self.api)
        except (StateError, MachineError, RenderError, OutputError, OSError) as exc:
            raise RebuildFailed(str(exc)) from None
        except (kube.Transient, kube.Fatal) as exc:
            raise RebuildFailed(f"reading namespace {self.namespace}: {exc}") from None
        for warning in result.warnings:  # a join token that could not be minted, among others
            log.warning("cluster mode: %s", warning)
        self.refused = refused
        names = {str(node.mac): node.name for node in cluster.nodes}
        for mac, why in sorted(refused.items()):
            log.warning("cluster mode: Machine %s: %s", names.get(mac, mac), why)
        s = result.summary
        minted = f"; join tokens minted for {', '.join(result.tokens_minted)}" if result.tokens_minted else ""
        return (f"{len(cluster.nodes)} machines: {len(s.written)} written, {len(s.unchanged)} unchanged, "
                f"{len(s.removed)} removed{minted}")


def rebuilder(api, namespace: str, output: Path, assets: Path, ipxe_dir: Path) -> Rebuild:
    return Rebuild(api, namespace, output, assets, ipxe_dir)


def bmc_passwords(output: Path) -> Path:
    """Where the BMC passwords the Machines keep in Secrets are written: beside the tree, never in it
    (nothing there is served, and the tree is switched by rename)."""
    return output.parent / f"{output.name}.bmc-passwords"


def take_templates(directory: Path, files: dict[str, bytes]) -> bool:
    """Make `directory` hold exactly `files` (the templates ConfigMap's, paths already checked by
    state_from_objects), swapped in whole so that no render reads half of an edit. True if it changed."""
    present = ({str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}
               if directory.is_dir() else {})
    if present == files:
        return False
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        for rel, data in files.items():
            atomic_write(staging / rel, data, 0o644)
        os.chmod(staging, 0o755)
        if directory.is_dir():
            exchange(staging, directory)
        else:
            os.rename(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after the exchange: the old templates
    return True


def stale_credentials(output: Path, state: State) -> list[str]:
    """The files of the credentials Secret that differ from (or are missing in) --output's; join
    tokens aside, which this serve mints and keeps itself."""
    creds = output / CREDENTIALS
    return sorted(name for name, data in state.credentials.items()
                  if name not in FOREIGN and (not (creds / name).is_file() or (creds / name).read_bytes() != data))


def checked(text: bytes, scratch: Path) -> Cluster:
    """The cluster.yaml `text`, through every check `validate` runs (duplicate MACs and addresses,
    releases, ...): the CRDs' schema is only the first gate."""
    with tempfile.NamedTemporaryFile(dir=scratch, prefix=".cluster-mode-", suffix=".yaml") as f:
        f.write(text)
        f.flush()
        try:
            cluster, _ = load_cluster(Path(f.name), "the cluster's Machines")
        except InvalidConfig as exc:
            errors = [p.text() for p in exc.problems if p.severity == "error"]
            raise MachineError("; ".join(errors[:5])) from None
        except SourceError as exc:
            raise MachineError(str(exc)) from None
    return cluster


def owned(output: Path, namespace: str) -> str | None:
    """Why --output cannot be cluster mode's, or None: absent, empty, or marked for this namespace."""
    if not output.exists() or (output.is_dir() and not any(output.iterdir())):
        return None
    marker = output / MARKER
    if marker.is_file() and marker.read_text().strip() == namespace:
        return None
    return (f"{output} holds a tree that --from-cluster did not make for namespace {namespace}: give it an "
            "empty or new directory (it never overwrites an appliance's output)")


def hooks(server, rebuild: Rebuild, identity: str) -> Hooks:
    """Cluster mode's view of a running serve (runner.Server)."""
    def node_state(mac: str) -> Report:
        state = server.events.state(mac)
        refused = rebuild.refused.get(mac, "")
        if state is None:
            return Report("", refused)
        return Report(state.phase, "; ".join(part for part in (state.error, refused) if part), tuple(state.history))

    def reinstall(mac: str, name: str) -> None:
        server.events.record(Event(EventKind.REINSTALL, mac=mac, node=name, source="serve",
                                   message="spec.reinstall of its Machine"))

    leading = server.elector.leading if server.elector is not None else (lambda: True)
    return Hooks(rebuild=rebuild, refresh=server.store.refresh, leading=leading, node_state=node_state,
                 reinstall=reinstall, identity=identity)
