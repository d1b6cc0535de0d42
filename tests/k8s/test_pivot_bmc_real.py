"""BMC passwords in Secrets, against the real API server and a real Redfish BMC (sushy-tools), read
with the ServiceAccount's own token: cluster mode's render (the rebuild `serve --from-cluster` runs)
writes the password of the Secret a Machine names beside the tree, and the power code logs in with it.
The account's RBAC for it (get any Secret in its namespace, list none) is in test_pivot_real.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.cli.cluster_mode import bmc_passwords, rebuilder
from app.cluster import load_cluster
from app.power import way_for
from app.power.base import PowerError
from app.serve.cluster.cluster_mode import RebuildFailed
from app.wait import kube
from tests.integration.test_power_bmc import SYSTEMS
from tests.k8s.test_pivot_real import (  # noqa: F401  (fixtures)
    NS,
    as_service_account,
    machine,
    output,
    pivoted,
    templates,
)
from tests.support.bmc import PASSWORD, USER, Emulator, sushy_emulator

SECRET = "bmc-worker-9"


@pytest.fixture(scope="module")
def bmc_url(control_plane, tmp_path_factory):
    """One Redfish BMC in the control plane's network namespace, where the tests run."""
    binary = sushy_emulator()
    if binary is None:
        pytest.skip("needs sushy-emulator (pip: sushy-tools, a test dependency)")
    with control_plane.inside():
        emulator = Emulator(tmp_path_factory.mktemp("redfish"), [SYSTEMS["reader"]], binary)
    yield emulator.url
    emulator.stop()


def put_secret(control_plane, password: str) -> None:
    body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": SECRET, "namespace": NS},
            "stringData": {"password": password}}
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(body))


@pytest.fixture
def worker_9(control_plane, pivoted, bmc_url):  # noqa: F811
    """worker-9, powered through the BMC, its password in the Secret SECRET."""
    put_secret(control_plane, PASSWORD)
    control_plane.kubectl("apply", "-f", "-", stdin=machine(power="redfish", bmc={
        "address": bmc_url, "username": USER, "passwordSecret": SECRET}))
    yield
    control_plane.kubectl("delete", "machine", "worker-9", "-n", NS, "--ignore-not-found")
    control_plane.kubectl("delete", "secret", SECRET, "-n", NS, "--ignore-not-found")


def rebuild(control_plane, as_service_account, out: Path):  # noqa: F811
    """What serve --from-cluster does, as the ServiceAccount; the cluster and worker-9 from its tree."""
    api = kube.api_client(as_service_account, control_plane.server)
    rebuilder(api, NS, out, Path("/nonexistent"), Path("/nonexistent"))()
    cluster, _ = load_cluster(out / "cluster.yaml")
    return cluster, next(n for n in cluster.nodes if n.name == "worker-9")


def test_the_power_code_logs_in_with_the_password_of_the_machines_secret(control_plane, as_service_account,  # noqa: F811
                                                                         worker_9, tmp_path):
    out = tmp_path / "tree"
    cluster, node = rebuild(control_plane, as_service_account, out)
    written = bmc_passwords(out) / SECRET
    assert node.bmc.password_file == str(written) and written.read_text() == PASSWORD
    assert written.stat().st_mode & 0o777 == 0o600 and written.parent.stat().st_mode & 0o777 == 0o700
    assert way_for(cluster, node).status().power == "off"  # the BMC took the Secret's password
    leaked = [p for p in out.rglob("*") if p.is_file() and PASSWORD.encode() in p.read_bytes()]
    assert leaked == []  # nothing in the served tree holds it
    put_secret(control_plane, "not-the-password")  # the Secret is what decides: now the BMC refuses
    cluster, node = rebuild(control_plane, as_service_account, out)
    with pytest.raises(PowerError, match="401"):
        way_for(cluster, node).status()


def test_a_machine_naming_the_appliances_own_secret_is_not_rendered(control_plane, as_service_account,  # noqa: F811
                                                                     worker_9, tmp_path):
    spec = yaml.safe_load(machine(power="redfish", bmc={"address": "http://10.0.1.9:8000", "username": USER,
                                                        "passwordSecret": "bootstrap-node-credentials"}))
    control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(spec))
    with pytest.raises(RebuildFailed, match="'bootstrap-node-credentials' is the appliance's own state"):
        rebuild(control_plane, as_service_account, tmp_path / "tree")
    assert not (tmp_path / "tree").exists() and not bmc_passwords(tmp_path / "tree").exists()
