"""cluster.yaml nodes <-> Machine objects, and the rest of the file <-> a ProvisioningCluster
(app/cluster/machines.py): every field survives the round trip; what cluster.yaml cannot hold is a
clear error."""

from __future__ import annotations

import json
import random

import pytest

from app.cluster import load_cluster
from app.cluster.machines import (
    ORDER_ANNOTATION,
    MachineError,
    cluster_from_objects,
    machine_from_node,
    node_from_machine,
    node_order,
    settings_from_cluster,
)
from app.cluster.model import Bmc, Node, NodePxe
from tests.support.paths import EXAMPLE

BASE = {"name": "n1", "role": "worker", "mac": "52:54:00:aa:bb:01", "ip": "10.0.0.31",
        "install_disk": "/dev/disk/by-id/nvme-x"}
VARIANTS = {
    "plain": {},
    "controller, arm64": {"role": "controller", "arch": "arm64"},
    "kernel disk name": {"install_disk": "/dev/sda", "allow_kernel_disk_name": True},
    "redfish with a password file": {
        "power": "redfish",
        "bmc": Bmc(address="https://10.0.1.5", username="root", password_file="/run/bmc", system="1",
                   verify_tls=False)},
    "ipmi with a password variable": {"power": "ipmi",
                                      "bmc": Bmc(address="10.0.1.6:623", username="admin", password_env="BMC_PW")},
    "wol": {"power": "wol"},
    "uefi loader": {"pxe": NodePxe(uefi_loader="ipxe")},
    "mac written another way": {"mac": "52-54-00-AA-BB-01"},
}


@pytest.mark.parametrize("variant", VARIANTS.values(), ids=list(VARIANTS))
def test_a_node_survives_the_round_trip(variant):
    node = Node(**{**BASE, **variant})
    machine = machine_from_node(node, "ns", "lab", 3, reinstall=2)
    assert machine["metadata"]["name"] == node.name and machine["metadata"]["namespace"] == "ns"
    assert machine["spec"]["mac"] == node.mac == "52:54:00:aa:bb:01"  # the canonical spelling
    assert machine["spec"]["reinstall"] == 2 and machine["metadata"]["annotations"][ORDER_ANNOTATION] == "3"
    assert node_from_machine(machine) == node


def test_the_bmc_password_itself_never_travels():
    node = Node(**BASE, power="ipmi", bmc=Bmc(address="10.0.1.6", username="admin", password_env="BMC_PW"))
    bmc = machine_from_node(node, "ns", "lab", 0)["spec"]["bmc"]
    assert bmc == {"address": "10.0.1.6", "username": "admin", "passwordEnv": "BMC_PW", "verifyTLS": True}


def test_the_whole_example_cluster_round_trips_in_any_order():
    cluster, _ = load_cluster(EXAMPLE)
    machines = [machine_from_node(n, "ns", cluster.cluster.name, i) for i, n in enumerate(cluster.nodes)]
    random.Random(7).shuffle(machines)  # the API lists by name, not by cluster.yaml's order
    back = cluster_from_objects(settings_from_cluster(cluster, "ns"), node_order(machines))
    assert back == cluster
    assert back.bootstrap_node == cluster.bootstrap_node  # the one that runs kubeadm init


def test_a_machine_added_later_comes_after_the_pivoted_ones():
    cluster, _ = load_cluster(EXAMPLE)
    machines = [machine_from_node(n, "ns", "lab", i) for i, n in enumerate(cluster.nodes)]
    added = machine_from_node(Node(**{**BASE, "name": "a-new-one"}), "ns", "lab", 0)
    del added["metadata"]["annotations"]  # as `kubectl apply` of a hand-written Machine
    assert [m["metadata"]["name"] for m in node_order([added, *machines])][-1] == "a-new-one"


def machine(**spec) -> dict:
    base = {"mac": "52:54:00:aa:bb:01", "role": "worker", "addresses": ["10.0.0.31"], "installDisk": "/dev/disk/by-id/x"}
    return {"metadata": {"name": "m1"}, "spec": {**base, **spec}}


@pytest.mark.parametrize("spec, says", [
    ({"addresses": ["10.0.0.31", "10.0.0.32"]}, "one address per node, this one has 2"),
    ({"addresses": []}, "this one has 0"),
    ({"bmc": {"address": "10.0.1.6", "username": "u", "passwordSecret": "bmc-m1"}}, "Secret 'bmc-m1'"),
    ({"mac": "01:00:5e:00:00:01"}, "Machine m1: mac: "),
    ({"role": "master"}, "Machine m1: role: "),
    ({"installDisk": "sda"}, "Machine m1: install_disk: "),
    ({"bmc": {"address": "10.0.1.6", "username": "u"}}, "Machine m1: bmc: "),
])
def test_what_cluster_yaml_cannot_hold_is_a_clear_error(spec, says):
    with pytest.raises(MachineError) as caught:
        node_from_machine(machine(**spec))
    assert says in str(caught.value)


def test_bad_settings_name_the_cluster_object():
    cluster, _ = load_cluster(EXAMPLE)
    settings = settings_from_cluster(cluster, "ns")
    settings["spec"]["cni"] = "weave"
    with pytest.raises(MachineError, match="ProvisioningCluster lab: cni: "):
        cluster_from_objects(settings, [machine_from_node(cluster.nodes[0], "ns", "lab", 0)])


def test_the_bootstrap_token_stays_out_of_the_cluster_object():
    """cluster.yaml's kubeadm_token is a secret; it travels in the credentials Secret, never here."""
    cluster, _ = load_cluster(EXAMPLE)
    token = "abcdef.0123456789abcdef"
    with_token = cluster.model_copy(update={"cluster": cluster.cluster.model_copy(update={"kubeadm_token": token})})
    settings = settings_from_cluster(with_token, "ns")
    assert token not in json.dumps(settings)
    machines = [machine_from_node(n, "ns", "lab", i) for i, n in enumerate(cluster.nodes)]
    assert cluster_from_objects(settings, machines) == cluster  # the same cluster.yaml, without the token
