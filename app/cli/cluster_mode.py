"""`serve --from-cluster`'s glue: how the cluster's objects become the tree serve reads.

Here, in the CLI layer, because it joins three lower parts that must not import each other: `unpivot`'s
reading and export (app/pivot, layer 4), `generate` (layer 4) and serve (layer 3), which gets the
result as a plain `rebuild` callable (app/serve/cluster/cluster_mode.py).

The first render exports the cluster's state exactly as `unpivot` does (cluster.yaml, templates/,
credentials/: old-or-new, into an absent or empty --output) and marks the tree as cluster mode's;
every render (that one included) then runs `generate` on it, the day-2 path, which switches the
tree atomically. Later renders rewrite only cluster.yaml: the credentials and templates are the ones
exported at start (a changed Secret or templates ConfigMap is taken at the next start).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable
from pathlib import Path

from app.atomic_file import atomic_write
from app.cluster import InvalidConfig, SourceError, load_cluster
from app.cluster.machines import MachineError
from app.cluster.model import Cluster
from app.events import Event, EventKind
from app.generate import generate
from app.generations import OutputError
from app.pivot.state import StateError
from app.pivot.unpivot import CLUSTER_YAML, TEMPLATES, cluster_yaml, export, read_cluster
from app.render.tree import RenderError
from app.serve.cluster.cluster_mode import Hooks, RebuildFailed
from app.wait import kube

MARKER = ".from-cluster"  # in --output: this tree is cluster mode's, made from namespace <contents>


def rebuilder(api, namespace: str, output: Path, assets: Path, ipxe_dir: Path) -> Callable[[], str]:
    """The `rebuild` callable: read the namespace's objects, render, switch. RebuildFailed, nothing changed."""
    def rebuild() -> str:
        try:
            cluster, state = read_cluster(api, namespace, bmc_passwords(output))
            text = cluster_yaml(cluster)
            cluster = checked(text, output.parent)
            if not (output / MARKER).is_file():
                export(cluster, state, output, dt.datetime.now(dt.UTC))
                atomic_write(output / MARKER, namespace.encode(), 0o644)
            else:
                atomic_write(output / CLUSTER_YAML, text, 0o644)
            templates = output / TEMPLATES
            result = generate(cluster, output, templates if templates.is_dir() else None, assets=assets,
                              ipxe_dir=ipxe_dir)
        except (StateError, MachineError, RenderError, OutputError, OSError) as exc:
            raise RebuildFailed(str(exc)) from None
        except (kube.Transient, kube.Fatal) as exc:
            raise RebuildFailed(f"reading namespace {namespace}: {exc}") from None
        s = result.summary
        return (f"{len(cluster.nodes)} machines: {len(s.written)} written, {len(s.unchanged)} unchanged, "
                f"{len(s.removed)} removed")
    return rebuild


def bmc_passwords(output: Path) -> Path:
    """Where the BMC passwords the Machines keep in Secrets are written: beside the tree, never in it
    (nothing there is served, and the tree is switched by rename)."""
    return output.parent / f"{output.name}.bmc-passwords"


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


def hooks(server, rebuild: Callable[[], str], identity: str) -> Hooks:
    """Cluster mode's view of a running serve (runner.Server)."""
    def node_state(mac: str) -> tuple[str, str]:
        state = server.events.state(mac)
        return (state.phase, state.error) if state is not None else ("", "")

    def reinstall(mac: str, name: str) -> None:
        server.events.record(Event(EventKind.REINSTALL, mac=mac, node=name, source="serve",
                                   message="spec.reinstall of its Machine"))

    leading = server.elector.leading if server.elector is not None else (lambda: True)
    return Hooks(rebuild=rebuild, refresh=server.store.refresh, leading=leading, node_state=node_state,
                 reinstall=reinstall, identity=identity)
