"""The way back: the cluster's objects become an output directory again, for `generate` and `serve`
on an appliance.

    DIR/cluster.yaml     from the ProvisioningCluster and the Machines (cluster.yaml's node order)
    DIR/templates/       the template overrides that were in use
    DIR/credentials/     the PKI and tokens, the cluster record, and a fresh admin client certificate
                         from the CA (the cluster never holds one: see app/pivot/state.py)
    DIR/events.jsonl     each Machine's phase, timeline and installed-ness (app/pivot/history.py), so
                         that an installed machine is told to boot from its disk, not installed again

Old-or-new, never a mix: everything is written into a staging directory beside DIR, flushed, then
renamed to DIR in one step. DIR must not exist or be empty; unpivot never merges the cluster's state
into an older tree (a stale cluster.yaml beside fresh credentials is the mix this rules out).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import yaml

from app import pki
from app.atomic_file import atomic_write
from app.cluster.machines import MACHINES, PROVISIONING_CLUSTERS, VERSION, cluster_from_objects, node_order
from app.cluster.model import Cluster
from app.cluster_record import CLUSTER_RECORD, JOIN_TOKENS
from app.generations import OUTPUT_MODE, write_tree
from app.layout import CREDENTIALS, EVENTS
from app.pivot import bmc
from app.pivot.state import (
    CREDENTIALS_SECRET,
    RECORD_CONFIGMAP,
    TEMPLATES_CONFIGMAP,
    State,
    StateError,
    state_from_objects,
)
from app.wait import kube

CLUSTER_YAML = "cluster.yaml"
TEMPLATES = "templates"
FOREIGN = {JOIN_TOKENS.split("/", 1)[1]}  # files `wait`/`generate` keep beside the generated tree, not in it


def read_cluster(api, namespace: str, bmc_passwords: Path | None = None,
                 refused: dict[str, str] | None = None, seen: list[dict] | None = None) -> tuple[Cluster, State]:
    """The cluster.yaml and state the namespace holds. StateError when something is missing or wrong.
    With `bmc_passwords` (cluster mode), the BMC passwords the Machines keep in Secrets are written
    there and named as files, and a BMC password in a file or variable is not used: `refused` is
    filled with MAC -> why (app/pivot/bmc.py). Without it a Machine with a Secret is a MachineError.
    `seen` is filled with the Machines as read (their status too)."""
    group = f"/apis/bootstrap-node.io/{VERSION}/namespaces/{namespace}"
    settings = kube.get(api, f"{group}/{PROVISIONING_CLUSTERS}").get("items", [])
    if len(settings) != 1:
        raise StateError(f"namespace {namespace}: expected one ProvisioningCluster, found {len(settings)} "
                         "(is this the namespace pivot used? see --namespace)")
    machines = kube.get(api, f"{group}/{MACHINES}").get("items", [])
    if seen is not None:
        seen[:] = machines
    core = f"/api/v1/namespaces/{namespace}"
    try:
        objects = [kube.get(api, f"{core}/secrets/{CREDENTIALS_SECRET}"),
                   kube.get(api, f"{core}/configmaps/{RECORD_CONFIGMAP}"),
                   kube.get(api, f"{core}/configmaps/{TEMPLATES_CONFIGMAP}")]
    except kube.Fatal as exc:
        if "HTTP 404" in str(exc):
            raise StateError(f"namespace {namespace}: {exc}") from None
        raise
    files = None
    if bmc_passwords is not None:
        machines, set_aside = bmc.set_aside_local_sources(machines)
        files = bmc.write_passwords(api, namespace, machines, bmc_passwords)
        if refused is not None:
            refused.clear()
            refused.update(set_aside)
    return cluster_from_objects(settings[0], node_order(machines), files), state_from_objects(*objects)


def cluster_yaml(cluster: Cluster) -> bytes:
    body = yaml.safe_dump(cluster.model_dump(mode="json", exclude_none=True), sort_keys=False, width=120)
    return ("# Exported by `bootstrap-node unpivot` from the cluster's Machines and ProvisioningCluster.\n"
            + body).encode()


def credential_files(state: State, now: dt.datetime) -> tuple[dict[str, tuple[bytes, int]], dict[str, bytes]]:
    """(files for the generated tree, files kept beside it) under credentials/, with their modes."""
    creds = dict(state.credentials)
    ca_crt, ca_key = creds[pki.FILES["ca_crt"]], creds[pki.FILES["ca_key"]]
    creds[pki.FILES["admin_crt"]], creds[pki.FILES["admin_key"]] = pki.admin_client(ca_crt, ca_key, now)
    public = {pki.FILES[name] for name in pki.PUBLIC}
    tree = {f"{CREDENTIALS}/{name}": (data, 0o644 if name in public else 0o600)
            for name, data in creds.items() if name not in FOREIGN}
    beside = {f"{CREDENTIALS}/{name}": data for name, data in creds.items() if name in FOREIGN}
    if state.record is not None:
        beside[CLUSTER_RECORD] = state.record
    return tree, beside


def unusable_target(target: Path) -> str | None:
    """Why `target` cannot become the exported directory, or None."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        return (f"{target} exists and is not empty: unpivot into a new directory (it never mixes the "
                "cluster's state into an older tree)")
    if not target.parent.is_dir():
        return f"{target.parent}: no such directory"
    return None


def export(cluster: Cluster, state: State, target: Path, now: dt.datetime, event_log: bytes = b"") -> None:
    """Write DIR as one step (see the module's docstring). Raises StateError, nothing changed.
    `event_log`: DIR/events.jsonl, what the machines have been through (app/pivot/history.py)."""
    if problem := unusable_target(target):
        raise StateError(problem)
    try:
        # A fresh directory of our own (mkdtemp: exclusive, unpredictable), not a fixed name: DIR's parent
        # may be shared, and a planted symlink there would receive the CA keys.
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.unpivot-", dir=target.parent))
        os.chmod(staging, OUTPUT_MODE)
    except OSError as exc:
        raise StateError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        tree, beside = credential_files(state, now)
        write_tree(staging, tree)  # the generations layout `generate` continues from
        for rel, data in beside.items():
            atomic_write(staging / rel, data, 0o600)
        atomic_write(staging / CLUSTER_YAML, cluster_yaml(cluster), 0o644)
        for rel, data in state.templates.items():
            atomic_write(staging / TEMPLATES / rel, data, 0o644)
        if event_log:
            atomic_write(staging / EVENTS, event_log, 0o644)
        _fsync_tree(staging)
        os.rename(staging, target)  # replaces an empty directory; fails on a non-empty one
        _fsync(target.parent)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StateError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    """Every directory in the staged tree reaches the disk before the rename makes it visible (the
    files themselves were fsynced as they were written)."""
    for directory, _, _ in os.walk(root):
        _fsync(Path(directory))


def _fsync(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
