"""`pivot` and `unpivot` against a real kube-apiserver (etcd, controller-manager, kubeadm's own
kube-system objects): the CRDs are Established and validate with the server's own messages, kubectl
shows the printer columns, the ServiceAccount's RBAC is what SubjectAccessReviews and its own token
say, every manifest passes server-side dry-run, a second pivot changes nothing, and the state comes
back out byte for byte."""

from __future__ import annotations

import base64
import json
import shutil
import traceback
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from app.cluster import load_cluster
from app.pivot import rbac
from app.pivot.apply import path_of
from app.pivot.manifests import PivotInput, render
from app.pivot.state import CREDENTIAL_KEYS, CREDENTIALS_SECRET, TEMPLATES_CONFIGMAP, read_state
from app.wait import kube
from tests.support.paths import EXAMPLE
from tests.unit.test_pivot_state import as_wait_leaves_it, write_templates

NS = "bootstrap-node"
SA_USER = f"system:serviceaccount:{NS}:{rbac.SERVICE_ACCOUNT}"
TEMPLATES = {"addons/10-team.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n"}


def cli(*args: str):
    return CliRunner().invoke(app, list(args))


def said(result) -> str:
    """The output, and the traceback of an exception the command let through (a defect)."""
    if result.exception is None or isinstance(result.exception, SystemExit):
        return result.output
    return result.output + "".join(traceback.format_exception(result.exception))


@pytest.fixture(scope="module")
def admin(control_plane):
    return kube.api_client(control_plane.admin_conf, control_plane.server)


@pytest.fixture(scope="module")
def output(generated_k8s, tmp_path_factory) -> Path:
    """The generated tree as `wait` leaves it: with the cluster record and a join token."""
    out = tmp_path_factory.mktemp("pivot") / "output"
    shutil.copytree(generated_k8s, out, symlinks=True)
    return as_wait_leaves_it(out)


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> Path:
    return write_templates(tmp_path_factory.mktemp("templates"), {k: v.encode() for k, v in TEMPLATES.items()})


def pivot(control_plane, output, templates, *more: str):
    return cli("--config", str(EXAMPLE), "--output", str(output), "--templates", str(templates), "pivot",
               "--kubeconfig", str(control_plane.admin_conf), "--image", "registry.example/bootstrap-node:test",
               "--timeout", "60", *more)


@pytest.fixture(scope="module")
def pivoted(control_plane, output, templates):
    with control_plane.inside():  # module fixtures run before the autouse one that enters it for tests
        result = pivot(control_plane, output, templates)
    assert result.exit_code == 0, said(result)
    return result


def objects(output, templates) -> list[dict]:
    cluster, _ = load_cluster(EXAMPLE)
    return render(PivotInput(cluster, read_state(output, templates), "registry.example/bootstrap-node:test"))


def test_the_crds_are_established(pivoted, admin):
    for name in ("machines.bootstrap-node.io", "provisioningclusters.bootstrap-node.io"):
        crd = kube.get(admin, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        assert {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == "True"


GOOD = {"mac": "52:54:00:00:00:99", "role": "worker", "addresses": ["10.0.0.99"],
        "installDisk": "/dev/disk/by-id/virtio-new"}


def machine(name: str = "worker-9", **spec) -> str:
    """A Machine as a user writes it; a field given as None is left out."""
    body = {key: value for key, value in {**GOOD, **spec}.items() if value is not None}
    return yaml.safe_dump({"apiVersion": "bootstrap-node.io/v1alpha1", "kind": "Machine",
                           "metadata": {"name": name, "namespace": NS}, "spec": body})


@pytest.mark.parametrize("name, spec, says", [
    ("bad-mac", {"mac": "52:54:00:00:00:zz"}, 'spec.mac: Invalid value: "52:54:00:00:00:zz": spec.mac in body should match'),
    ("multicast", {"mac": "01:00:5e:00:00:01"}, "spec.mac: Invalid value"),
    ("bad-role", {"role": "master"}, 'spec.role: Unsupported value: "master": supported values: "controller", '
                                     '"worker"'),
    ("no-disk", {"installDisk": None}, "spec.installDisk: Required value"),
    ("two-addresses", {"addresses": ["10.0.0.98", "10.0.0.99"]}, "spec.addresses: Too many: 2: must have at most 1"),
    ("kernel-disk", {"installDisk": "/dev/sda"}, "installDisk must be /dev/disk/by-id/"),
    ("no-password-source", {"bmc": {"address": "10.0.1.9", "username": "root"}},
     "give exactly one of passwordFile, passwordEnv and passwordSecret"),
    ("dotted.name", {}, "a Machine's name is its hostname: a DNS label"),
])
def test_a_bad_machine_is_refused_with_the_servers_message(control_plane, pivoted, name, spec, says):
    run = control_plane.kubectl("apply", "-f", "-", stdin=machine(name, **spec), check=False)
    assert run.returncode != 0 and says in run.stderr, run.stderr
    assert control_plane.kubectl("get", "machine", "-n", NS, name, check=False).returncode != 0


def test_a_good_machine_is_accepted_and_kubectl_shows_the_columns(control_plane, pivoted):
    control_plane.kubectl("apply", "-f", "-", stdin=machine())
    control_plane.kubectl("patch", "machine", "worker-9", "-n", NS, "--subresource=status", "--type=merge",
                          "-p", json.dumps({"status": {"phase": "installing"}}))
    lines = control_plane.kubectl("get", "machines", "-n", NS).stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "MAC", "PHASE", "AGE"]
    rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
    assert rows["worker-9"] == ["worker", "52:54:00:00:00:99", "installing"]
    assert rows["cp-1"][:2] == ["controller", "52:54:00:00:00:11"]  # and no phase yet
    assert set(rows) == {"cp-1", "cp-2", "cp-3", "worker-1", "worker-2", "worker-9"}
    # The MAC is immutable: another NIC is another Machine.
    changed = control_plane.kubectl("apply", "-f", "-", stdin=machine(mac="52:54:00:00:00:98"), check=False)
    assert changed.returncode != 0 and "mac is immutable" in changed.stderr
    control_plane.kubectl("delete", "machine", "worker-9", "-n", NS)


def review(admin, verb: str, resource: str, namespace: str = "", group: str = "", name: str = "",
           subresource: str = "", of: str = NS) -> bool:
    """Whether the ServiceAccount of namespace `of` may do this (a SubjectAccessReview)."""
    attributes = {"verb": verb, "resource": resource, "namespace": namespace, "group": group, "name": name,
                  "subresource": subresource}
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": f"system:serviceaccount:{of}:{rbac.SERVICE_ACCOUNT}",
                     "groups": ["system:serviceaccounts", f"system:serviceaccounts:{of}",
                                                 "system:authenticated"],
                     "resourceAttributes": {k: v for k, v in attributes.items() if v}}}
    return kube.create(admin, "/apis/authorization.k8s.io/v1/subjectaccessreviews", body)["status"]["allowed"]


ALLOWED = [
    ("get", "secrets", "kube-system", "", "kubeadm-certs"),
    ("update", "secrets", "kube-system", "", "kubeadm-certs"),
    ("create", "secrets", "kube-system", "", ""),
    ("update", "leases", NS, "coordination.k8s.io", rbac.LEASE),
    ("create", "leases", NS, "coordination.k8s.io", ""),
    ("create", "events", NS, "", ""),
    ("get", "secrets", NS, "", CREDENTIALS_SECRET),
    ("get", "secrets", NS, "", "bmc-worker-9"),  # a BMC password a Machine names (bmc.passwordSecret)
    ("get", "configmaps", NS, "", TEMPLATES_CONFIGMAP),
    ("watch", "configmaps", NS, "", TEMPLATES_CONFIGMAP),  # cluster mode takes template edits while it runs
    ("watch", "provisioningclusters", NS, "bootstrap-node.io", ""),
    ("watch", "machines", NS, "bootstrap-node.io", ""),
    ("list", "nodes", "", "", ""),
    ("patch", "roles", "kube-system", "rbac.authorization.k8s.io", "kubeadm:kubeadm-certs"),
]
REFUSED = [
    ("get", "secrets", "kube-system", "", "bootstrap-token-abcdef"),
    ("list", "secrets", "kube-system", "", ""),
    ("delete", "secrets", "kube-system", "", "kubeadm-certs"),
    ("get", "secrets", "default", "", ""),
    ("list", "secrets", NS, "", ""),
    ("watch", "secrets", NS, "", "bmc-worker-9"),
    ("update", "secrets", NS, "", "bmc-worker-9"),
    ("list", "secrets", "", "", ""),  # cluster-wide
    ("get", "secrets", "kube-system", "", "bmc-worker-9"),
    ("create", "clusterrolebindings", "", "rbac.authorization.k8s.io", ""),
    ("escalate", "roles", "kube-system", "rbac.authorization.k8s.io", ""),
    ("bind", "clusterroles", "", "rbac.authorization.k8s.io", "cluster-admin"),
    ("impersonate", "users", "", "", "admin"),
    ("update", "leases", NS, "coordination.k8s.io", "someone-elses-lease"),
    ("update", "leases", "kube-system", "coordination.k8s.io", "kube-controller-manager"),
    ("delete", "nodes", "", "", "cp-1"),
    ("create", "pods", NS, "", ""),
    ("update", "machines", NS, "bootstrap-node.io", "cp-1"),  # status yes, spec no: the user owns the spec
]


@pytest.mark.parametrize("verb, resource, namespace, group, name", ALLOWED)
def test_the_service_account_may(admin, pivoted, verb, resource, namespace, group, name):
    assert review(admin, verb, resource, namespace, group, name)


@pytest.mark.parametrize("verb, resource, namespace, group, name", REFUSED)
def test_the_service_account_may_not(admin, pivoted, verb, resource, namespace, group, name):
    assert not review(admin, verb, resource, namespace, group, name)


def test_it_may_read_no_secret_kubeadm_made_but_kubeadm_certs(admin, pivoted):
    names = [s["metadata"]["name"] for s in kube.get(admin, "/api/v1/namespaces/kube-system/secrets")["items"]]
    assert any(n.startswith("bootstrap-token-") for n in names)  # kubeadm's own, from `init phase bootstrap-token`
    readable = {n for n in names if review(admin, "get", "secrets", "kube-system", "", n)}
    assert readable <= {"kubeadm-certs"}


def token_kubeconfig(control_plane, token: str, path: Path) -> Path:
    ca = base64.b64encode((control_plane.etc / "pki" / "ca.crt").read_bytes()).decode()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
              "clusters": [{"name": "c", "cluster": {"server": control_plane.server, "certificate-authority-data": ca}}],
              "users": [{"name": "sa", "user": {"token": token}}],
              "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa"}}]}
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def service_account_kubeconfig(control_plane, namespace: str, path: Path) -> Path:
    """A kubeconfig with the ServiceAccount's own token (TokenRequest, through real kubectl)."""
    token = control_plane.kubectl("create", "token", rbac.SERVICE_ACCOUNT, "-n", namespace, "--duration", "10m")
    return token_kubeconfig(control_plane, token.stdout.strip(), path)


@pytest.fixture(scope="module")
def as_service_account(control_plane, pivoted, tmp_path_factory) -> Path:
    return service_account_kubeconfig(control_plane, NS, tmp_path_factory.mktemp("sa") / "kubeconfig")


def test_with_its_own_token_it_cannot_escalate_or_bind(control_plane, as_service_account):
    wider = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": "wider", "namespace": "kube-system"},
             "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "get"]}]}
    run = control_plane.kubectl("create", "-f", "-", stdin=yaml.safe_dump(wider), kubeconfig=as_service_account,
                                check=False)
    assert run.returncode != 0 and "attempting to grant RBAC permissions not currently held" in run.stderr, run.stderr
    binding = control_plane.kubectl("create", "clusterrolebinding", "mine", "--clusterrole=cluster-admin",
                                    f"--serviceaccount={NS}:{rbac.SERVICE_ACCOUNT}", kubeconfig=as_service_account,
                                    check=False)
    assert binding.returncode != 0 and "forbidden" in binding.stderr
    readable = control_plane.kubectl("get", "secret", "-n", "kube-system", "kubeadm-certs",
                                     kubeconfig=as_service_account, check=False)
    assert "forbidden" not in readable.stderr  # allowed (NotFound, or found, are both fine)


def test_pivot_with_too_little_rights_exits_5_with_the_servers_message(control_plane, output, templates,
                                                                       as_service_account):
    result = cli("--config", str(EXAMPLE), "--output", str(output), "--templates", str(templates), "pivot",
                 "--kubeconfig", str(as_service_account), "--namespace", "elsewhere", "--timeout", "30")
    assert result.exit_code == 5, said(result)
    assert "the API server refused" in result.output and "RBAC: this kubeconfig's user may not" in result.output
    # Its first call reads the namespace (is it pivot's?): refused in the server's own words.
    assert f'User "{SA_USER}" cannot get resource "namespaces"' in result.output
    assert "Traceback" not in result.output


def test_every_manifest_passes_server_side_dry_run(control_plane, pivoted, output, templates):
    result = pivot(control_plane, output, templates, "--server-dry-run")
    assert result.exit_code == 0, said(result)
    accepted = [line for line in result.output.splitlines() if line.startswith("accepted")]
    assert len(accepted) == len(objects(output, templates)) and "not checked" not in result.output


def test_server_dry_run_on_a_fresh_namespace_stores_nothing(control_plane, admin, pivoted, output, templates):
    result = pivot(control_plane, output, templates, "--server-dry-run", "--namespace", "fresh")
    assert result.exit_code == 0, said(result)
    assert "accepted (dry run, nothing stored): Namespace fresh" in result.output
    assert "not checked: ServiceAccount fresh/bootstrap-node: namespace fresh does not exist yet" in result.output
    assert not kube.exists(admin, "/api/v1/namespaces/fresh")


def resource_versions(admin, output, templates) -> dict[str, object]:
    """Each object's resourceVersion; for a ValidatingAdmissionPolicy, the object without its
    bookkeeping. The API server writes a policy's status by server-side apply too, and sorts apply
    entries in managedFields by time: re-applying unchanged content puts ours after its entry, which
    counts as a change (resourceVersion moves) though nothing in the policy did."""
    def version(obj: dict) -> object:
        live = kube.get(admin, path_of(obj))
        if obj["kind"] != "ValidatingAdmissionPolicy":
            return live["metadata"]["resourceVersion"]
        meta = {k: v for k, v in live["metadata"].items() if k not in ("resourceVersion", "managedFields")}
        return {**live, "metadata": meta}
    return {path_of(o): version(o) for o in objects(output, templates)}


def test_a_second_pivot_changes_nothing(control_plane, admin, pivoted, output, templates):
    before = resource_versions(admin, output, templates)
    again = pivot(control_plane, output, templates)
    assert again.exit_code == 0, said(again)
    assert resource_versions(admin, output, templates) == before


def test_a_second_pivot_keeps_a_reinstall_bump_made_with_kubectl(control_plane, admin, pivoted, output, templates):
    """pivot does not own spec.reinstall: a pivot after an edit of cluster.yaml must not set a bumped
    Machine back to 0, below its status.observedReinstall, where the next bump would do nothing."""
    path = f"/apis/bootstrap-node.io/v1alpha1/namespaces/{NS}/machines/worker-2"
    bumped = kube.get(admin, path)["spec"].get("reinstall", 0) + 1
    control_plane.kubectl("patch", "machine", "worker-2", "-n", NS, "--type=merge", "-p",
                          json.dumps({"spec": {"reinstall": bumped}}))
    again = pivot(control_plane, output, templates)
    assert again.exit_code == 0, said(again)
    assert kube.get(admin, path)["spec"]["reinstall"] == bumped


def test_the_secret_holds_exactly_the_output_dirs_bytes(admin, pivoted, output, templates):
    secret = kube.get(admin, f"/api/v1/namespaces/{NS}/secrets/{CREDENTIALS_SECRET}")
    assert secret["type"] == "Opaque"
    held = {name: base64.b64decode(secret["data"][key]) for name, key in CREDENTIAL_KEYS.items()}
    assert held == {name: (output / "credentials" / name).read_bytes() for name in CREDENTIAL_KEYS}
    configmap = kube.get(admin, f"/api/v1/namespaces/{NS}/configmaps/{TEMPLATES_CONFIGMAP}")
    assert configmap["data"] == {"addons_10-team.yaml": TEMPLATES["addons/10-team.yaml"]}


def test_unpivot_gives_back_what_pivot_took(control_plane, pivoted, output, templates, tmp_path):
    back = tmp_path / "back"
    result = cli("--output", str(back), "unpivot", "--kubeconfig", str(control_plane.admin_conf))
    assert result.exit_code == 0, said(result)
    assert load_cluster(back / "cluster.yaml")[0] == load_cluster(EXAMPLE)[0]
    for name in [*CREDENTIAL_KEYS, "cluster.json"]:
        assert (back / "credentials" / name).read_bytes() == (output / "credentials" / name).read_bytes(), name
    assert (back / "templates" / "addons/10-team.yaml").read_text() == TEMPLATES["addons/10-team.yaml"]
    again = cli("--output", str(back), "unpivot", "--kubeconfig", str(control_plane.admin_conf))
    assert again.exit_code == 2 and "exists and is not empty" in again.output


def test_a_machine_added_with_kubectl_comes_back_in_cluster_yaml(control_plane, pivoted, tmp_path):
    control_plane.kubectl("apply", "-f", "-", stdin=machine("worker-7", mac="52:54:00:00:00:77",
                                                            addresses=["10.0.0.77"]))
    try:
        result = cli("--output", str(tmp_path / "back"), "unpivot", "--kubeconfig", str(control_plane.admin_conf))
        assert result.exit_code == 0, said(result)
    finally:
        control_plane.kubectl("delete", "machine", "worker-7", "-n", NS)
    nodes = load_cluster(tmp_path / "back" / "cluster.yaml")[0].nodes
    assert [n.name for n in nodes] == [n.name for n in load_cluster(EXAMPLE)[0].nodes] + ["worker-7"]
    assert (nodes[-1].mac, str(nodes[-1].ip), nodes[-1].role) == ("52:54:00:00:00:77", "10.0.0.77", "worker")


def test_kubectl_shows_the_cluster_settings(control_plane, pivoted):
    lines = control_plane.kubectl("get", "provisioningclusters", "-n", NS).stdout.splitlines()
    assert lines[0].split() == ["NAME", "KUBERNETES", "FLATCAR", "AGE"]
    cluster, _ = load_cluster(EXAMPLE)
    assert lines[1].split()[:3] == ["lab", cluster.cluster.k8s_version, cluster.cluster.flatcar_version]


def test_an_unreachable_api_exits_3_without_a_traceback(control_plane, output, templates, tmp_path):
    config = yaml.safe_load(control_plane.admin_conf.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    result = cli("--config", str(EXAMPLE), "--output", str(output), "--templates", str(templates), "pivot",
                 "--kubeconfig", str(tmp_path / "kubeconfig"), "--timeout", "1")
    assert result.exit_code == 3, said(result)
    assert "did not answer within 1 s" in result.output and "Traceback" not in result.output


def test_a_missing_output_dir_exits_2_before_any_call(control_plane, tmp_path):
    result = cli("--config", str(EXAMPLE), "--output", str(tmp_path / "none"), "pivot",
                 "--kubeconfig", str(control_plane.admin_conf))
    assert result.exit_code == 2 and "no such output directory" in result.output
