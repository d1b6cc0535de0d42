"""What `pivot` renders (app/pivot/manifests.py, crds.py, rbac.py, workload.py): pure, in apply order,
least privilege, and --dry-run's YAML never carries a secret byte."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest
import yaml

from app import pki
from app.cluster import load_cluster
from app.cluster.fields import parse_mac
from app.cluster.model import Cluster, Node, NodePxe
from app.events.model import Phase
from app.pivot import crds, rbac
from app.pivot.manifests import PivotInput, PivotInputError, parse_selector, render, to_yaml
from app.pivot.state import State
from app.serve.cluster import gate
from tests.support.paths import EXAMPLE

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def state() -> State:
    files = pki.to_files(pki.create_secrets(NOW))
    creds = {name: data for name, (data, _) in files.items() if not name.startswith("admin")}
    return State(creds, b'{"ca": "sha256:x"}\n', {"addons/team.yaml": b"kind: ConfigMap\n"})


@pytest.fixture(scope="module")
def objects(state) -> list[dict]:
    cluster, _ = load_cluster(EXAMPLE)
    return render(PivotInput(cluster, state, "registry.example/bootstrap-node:1", "prov", ("site/pxe", "yes")))


def by_kind(objects, kind) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def test_rendering_is_pure(state, objects):
    cluster, _ = load_cluster(EXAMPLE)
    again = render(PivotInput(cluster, state, "registry.example/bootstrap-node:1", "prov", ("site/pxe", "yes")))
    assert json.dumps(again) == json.dumps(objects)


def test_the_order_puts_what_others_need_first(objects):
    kinds = [o["kind"] for o in objects]
    assert kinds[0] == "Namespace"
    assert max(i for i, k in enumerate(kinds) if k == "CustomResourceDefinition") < kinds.index("ProvisioningCluster")
    assert kinds.index("ServiceAccount") < kinds.index("RoleBinding")
    # One Machine per node of the example, then the Deployment: its pods act on the Machines at once,
    # so each must be there (with its status from the log) before any pod starts.
    assert kinds[-6:] == ["Machine"] * 5 + ["Deployment"]


def test_the_admission_policy_comes_before_the_rights_it_narrows_and_names_our_account(objects):
    kinds = [o["kind"] for o in objects]
    assert max(i for i, k in enumerate(kinds) if k.startswith("ValidatingAdmissionPolicy")) \
        < min(i for i, k in enumerate(kinds) if k in ("Role", "RoleBinding", "ServiceAccount"))
    policies = by_kind(objects, "ValidatingAdmissionPolicy")
    bound = [(b["spec"]["policyName"], b["spec"]["validationActions"])
             for b in by_kind(objects, "ValidatingAdmissionPolicyBinding")]
    assert bound == [(p["metadata"]["name"], ["Deny"]) for p in policies]
    covered = {(r["apiGroups"][0], r["resources"][0]) for p in policies for r in p["spec"]["matchConstraints"]
               ["resourceRules"]}
    assert covered == {("", "secrets"), ("rbac.authorization.k8s.io", "roles"),
                       ("rbac.authorization.k8s.io", "rolebindings")}  # every create the RBAC cannot limit
    for policy in policies:
        assert policy["spec"]["failurePolicy"] == "Fail"
        [condition] = policy["spec"]["matchConditions"]
        assert condition["expression"] == "request.userInfo.username == 'system:serviceaccount:prov:bootstrap-node'"


def test_everything_namespaced_is_in_the_chosen_namespace_but_the_kube_system_role(objects):
    places = {(o["kind"], o["metadata"].get("namespace")) for o in objects}
    assert {ns for _, ns in places} == {None, "prov", "kube-system"}
    assert {k for k, ns in places if ns == "kube-system"} == {"Role", "RoleBinding"}


def shared_places(objects) -> dict[tuple[str, str | None, str], dict]:
    """(kind, namespace, name) -> object, for what is not in pivot's own namespace: one per name in
    the whole cluster, so another pivot's must not carry the same names."""
    return {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects
            if o["metadata"].get("namespace") != "prov" and o["kind"] not in ("Namespace", "CustomResourceDefinition")}


def test_two_namespaces_share_no_cluster_scoped_or_kube_system_object(state, objects):
    cluster, _ = load_cluster(EXAMPLE)
    other = render(PivotInput(cluster, state, "registry.example/bootstrap-node:1", "prov-b", ("site/pxe", "yes")))
    mine, theirs = shared_places(objects), shared_places([o for o in other if o["metadata"].get("namespace") != "prov-b"])
    assert {kind for kind, _, _ in mine} == {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                                             "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert len(mine) == len(theirs) and not set(mine) & set(theirs)
    for (kind, _, name), obj in mine.items():
        assert ":prov:" in name or "-prov-" in name, name
        if kind.endswith("Binding") and "subjects" in obj:
            assert obj["subjects"] == [{"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT, "namespace": "prov"}]
            assert obj["roleRef"]["name"] == name  # its own namespace's Role, not another pivot's


def all_rules(objects) -> list[dict]:
    return [rule for o in objects if o["kind"] in ("Role", "ClusterRole") for rule in o["rules"]]


def test_rbac_grants_no_wildcard_no_escalation_and_no_admin(objects):
    rules = all_rules(objects)
    flat = json.dumps(rules)
    assert '"*"' not in flat
    assert not {"escalate", "bind", "impersonate", "deletecollection"} & {v for r in rules for v in r["verbs"]}
    refs = [o["roleRef"]["name"] for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert not {"cluster-admin", "admin", "edit"} & set(refs)
    cluster_rules = [r for o in by_kind(objects, "ClusterRole") for r in o["rules"]]
    assert cluster_rules == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]


@pytest.mark.parametrize("namespace, resource, verb, names", [
    ("kube-system", "secrets", "get", ["kubeadm-certs"]),
    ("kube-system", "secrets", "update", ["kubeadm-certs"]),
    ("kube-system", "secrets", "create", None),  # the API cannot restrict create by name
    ("prov", "secrets", "get", None),  # the BMC passwords Machines name: any Secret in its own namespace
    ("prov", "secrets", "watch", ["bootstrap-node-credentials"]),
    ("prov", "configmaps", "get", ["bootstrap-node-record", "bootstrap-node-templates"]),
    ("prov", "leases", "update", ["bootstrap-node"]),
    ("prov", "leases", "create", None),
])
def test_reads_and_writes_are_limited_by_name_where_kubernetes_allows(objects, namespace, resource, verb, names):
    roles = [o for o in by_kind(objects, "Role") if o["metadata"]["namespace"] == namespace]
    granting = [r for o in roles for r in o["rules"] if resource in r["resources"] and verb in r["verbs"]]
    assert [r.get("resourceNames") for r in granting] == [names]


def test_no_secret_is_listable_anywhere(objects):
    for rule in all_rules(objects):
        if "secrets" in rule["resources"]:
            assert not {"list", "watch"} & set(rule["verbs"]) or rule.get("resourceNames")


def test_the_deployment(objects):
    [deployment] = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert deployment["spec"]["replicas"] == 2 and pod["hostNetwork"] is True
    assert pod["nodeSelector"] == {"site/pxe": "yes"} and pod["serviceAccountName"] == rbac.SERVICE_ACCOUNT
    [term] = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    security = container["securityContext"]
    assert security["privileged"] is False and security["capabilities"] == {
        "drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]}
    # On the host's network with NET_ADMIN: the runtime's syscall filter at least (kubelets default to none).
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {(p["containerPort"], p["protocol"]) for p in container["ports"]} == {
        (8080, "TCP"), (67, "UDP"), (4011, "UDP"), (69, "UDP")}
    # both probes ask /healthz, which a standby answers 200 too: /readyz (leader only) would keep the
    # standby unready and stall a rolling update
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        assert probe["httpGet"] == {"path": gate.HEALTH, "port": "http"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["image"] == "registry.example/bootstrap-node:1"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0  # host ports: never two on a node


def test_the_http_port_follows_cluster_yaml(state):
    cluster, _ = load_cluster(EXAMPLE)
    moved = cluster.model_copy(update={"bootstrap": cluster.bootstrap.model_copy(update={"http_port": 8081})})
    [deployment] = by_kind(render(PivotInput(moved, state, "i:1")), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8081


@pytest.mark.parametrize("change, says", [
    ({"namespace": "Bad_NS"}, "--namespace"),
    ({"namespace": "x" * 64}, "--namespace"),
    ({"node_selector": ("bad key!", "true")}, "--node-selector"),
    ({"node_selector": ("ok", "bad value!")}, "--node-selector"),
    ({"image": ""}, "--image"),
    ({"image": "a b"}, "--image"),
])
def test_bad_options_are_refused_with_their_name(state, change, says):
    cluster, _ = load_cluster(EXAMPLE)
    with pytest.raises(PivotInputError, match=says):
        PivotInput(**{"cluster": cluster, "state": state, "image": "i:1", **change})


@pytest.mark.parametrize("text, parsed", [("a=b", ("a", "b")), ("x.io/y=", ("x.io/y", "")), ("k=v=w", ("k", "v=w"))])
def test_node_selector_parsing(text, parsed):
    assert parse_selector(text) == parsed


@pytest.mark.parametrize("text", ["novalue", "=v", ""])
def test_node_selector_needs_a_key_and_an_equals(text):
    with pytest.raises(PivotInputError):
        parse_selector(text)


def test_dry_run_yaml_redacts_every_secret_byte_and_says_so(objects, state):
    text = to_yaml(objects)
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert len(docs) == len(objects)
    assert "# Secret data redacted by --dry-run" in text
    for data in state.credentials.values():
        assert base64.b64encode(data).decode() not in text
        assert data.decode().strip().splitlines()[-1] not in text  # nor any of the PEM's own lines
    [secret] = [d for d in docs if d["kind"] == "Secret"]
    assert all(v.startswith("REDACTED") for v in secret["data"].values())
    assert [d for d in docs if d["kind"] != "Secret"] == [o for o in objects if o["kind"] != "Secret"]


def crd(objects, kind) -> dict:
    return next(o for o in by_kind(objects, "CustomResourceDefinition") if o["spec"]["names"]["kind"] == kind)


def test_crd_enums_come_from_the_model(objects):
    version = crd(objects, "Machine")["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    assert schema["spec"]["properties"]["role"]["enum"] == ["controller", "worker"]
    assert schema["spec"]["properties"]["uefiLoader"]["enum"] == list(NodePxe.model_fields["uefi_loader"]
                                                                      .annotation.__args__[0].__args__)
    assert schema["status"]["properties"]["phase"]["enum"] == [p.value for p in Phase]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]][:4] == ["Role", "MAC", "Phase", "Age"]


@pytest.mark.parametrize("written", ["52:54:00:12:34:56", "AA-BB-CC-DD-EE-FF".replace("A", "0", 1), "0a0b.0c0d.0e0f"])
def test_the_mac_pattern_accepts_every_mac_cluster_yaml_accepts(written):
    assert re.fullmatch(crds.MAC_PATTERN, parse_mac(written))


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "52:54:00:12:34", "52-54-00-12-34-56", "52:54:00:12:34:5G",
                                 "52:54:00:AA:BB:CC"])
def test_the_mac_pattern_refuses_multicast_and_other_spellings(mac):
    assert not re.fullmatch(crds.MAC_PATTERN, mac)


def test_every_node_field_has_a_machine_field():
    """A new cluster.yaml node field must be given a home in the Machine (or this fails)."""
    covered = {"name", "role", "mac", "ip", "install_disk", "allow_kernel_disk_name", "arch", "power", "bmc", "pxe"}
    assert set(Node.model_fields) == covered


def test_every_cluster_yaml_section_has_a_property_so_the_server_prunes_none():
    """An unknown top-level field would be pruned silently by the API server: unpivot would lose it."""
    assert set(crds.cluster_spec()["properties"]) == set(Cluster.model_fields) - {"nodes"}
