"""Attacks on pivot's RBAC, made with the appliance ServiceAccount's own token against the real API
server (issue: security review). `create` on Secrets, Roles and RoleBindings in kube-system cannot be
limited by name, so without pivot's ValidatingAdmissionPolicy the account could:

- create a Secret of type kubernetes.io/service-account-token for a kube-system controller's account
  (the token controller fills it in), named `kubeadm-certs`, the one Secret it may read, whenever
  that name is free (the garbage collector deletes kubeadm-certs with its 2-hour lifetime token):
  a token of a controller account that can read every Secret, or edit every ClusterRole;
- bind its own kube-system Role to any subject (it holds every permission in it, so the RBAC
  escalation check lets it), handing Secret creation in kube-system to, say, every authenticated user;
- add subjects to `kubeadm:kubeadm-certs`, so anyone may read the encrypted CA keys.

Each test also checks that what the appliance does itself (app/wait/kubeadm_secrets.py) still works
with that token: the policy allows exactly those objects.

The API server enforces a new policy only a while after its create; pivot applies the Deployment (the
only thing that gives a pod the token) once the policies deny its probes. So the attacks here run the
moment pivot returns, into a namespace of this module's own (new policies), with no wait of their own:
an attack that gets through means pivot's guarantee does not hold."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import yaml

from app import pki
from app.pivot import guard, probe, rbac
from app.wait import kube, kubeadm_secrets
from tests.k8s import test_pivot_real as real
from tests.k8s.test_pivot_real import (  # noqa: F401
    admin,
    cli,
    output,
    pivot,
    said,
    service_account_kubeconfig,
    templates,
    token_kubeconfig,
)
from tests.support.paths import EXAMPLE

CERTS = f"/api/v1/namespaces/kube-system/secrets/{rbac.CERTS_SECRET}"
# kube-controller-manager's own account (--use-service-account-credentials): it may get and list every
# Secret, everywhere, to empty a namespace that is being deleted.
VICTIM = "namespace-controller"
TOKEN_DEADLINE = 30.0  # the token controller fills a new token Secret within a moment


NS = "guarded"  # pivoted into by this module only: its policies are new when the attacks run


@pytest.fixture(scope="module")
def as_service_account(control_plane, output, templates, tmp_path_factory):  # noqa: F811
    """Pivoted into NS; then, at once, a kubeconfig with the account's own token."""
    with control_plane.inside():  # module fixtures run before the autouse one that enters it for tests
        result = pivot(control_plane, output, templates, "--namespace", NS)
        assert result.exit_code == 0, said(result)
        return service_account_kubeconfig(control_plane, NS, tmp_path_factory.mktemp("sa") / "kubeconfig")


@pytest.fixture(scope="module")
def pivoted(as_service_account):
    return as_service_account


def as_sa(control_plane, kubeconfig, *args: str, stdin: str | None = None):
    return control_plane.kubectl(*args, kubeconfig=kubeconfig, stdin=stdin, check=False)


@pytest.fixture
def certs_name_free(control_plane, admin):  # noqa: F811
    """kubeadm-certs deleted (as the garbage collector does when its lifetime token expires), put
    back afterwards for the other tests."""
    saved = kube.get(admin, CERTS) if kube.exists(admin, CERTS) else None
    control_plane.kubectl("delete", "secret", "-n", "kube-system", rbac.CERTS_SECRET, "--ignore-not-found")
    yield
    control_plane.kubectl("delete", "secret", "-n", "kube-system", rbac.CERTS_SECRET, "--ignore-not-found")
    if saved is not None:
        meta = {k: v for k, v in saved["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
        kube.create(admin, "/api/v1/namespaces/kube-system/secrets", {**saved, "metadata": meta})


def stolen_token(admin) -> str:  # noqa: F811
    """The token the controller writes into the attacker's Secret; '' if none within the deadline."""
    deadline = time.monotonic() + TOKEN_DEADLINE
    while time.monotonic() < deadline:
        data = (kube.get(admin, CERTS).get("data") or {}) if kube.exists(admin, CERTS) else {}
        if "token" in data:
            return data["token"]
        time.sleep(0.5)
    return ""


def test_it_cannot_create_a_token_secret_for_a_controller_account(control_plane, admin, as_service_account,  # noqa: F811
                                                                   certs_name_free):
    assert kube.exists(admin, f"/api/v1/namespaces/kube-system/serviceaccounts/{VICTIM}")
    attack = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": rbac.CERTS_SECRET, "namespace": "kube-system",
                           "annotations": {"kubernetes.io/service-account.name": VICTIM}}}
    run = as_sa(control_plane, as_service_account, "create", "-f", "-", stdin=yaml.safe_dump(attack))
    if run.returncode == 0:  # the attack got through: show how far it goes
        token = stolen_token(admin)
        readable = as_sa(control_plane, as_service_account, "get", "secret", "-n", "kube-system",
                         rbac.CERTS_SECRET, "-o", "jsonpath={.data.token}").stdout
        pytest.fail(f"the ServiceAccount created a token Secret for kube-system/{VICTIM} (filled in: {bool(token)}, "
                    f"readable with its own token: {bool(readable) and readable == token})")
    assert "bootstrap-node" in run.stderr and "denied" in run.stderr, run.stderr


def test_it_cannot_hand_its_role_to_others(control_plane, as_service_account):  # noqa: F811
    run = as_sa(control_plane, as_service_account, "create", "rolebinding", "-n", "kube-system", "everyone",
                f"--role={rbac.day2_role(NS)}", "--group=system:authenticated")
    control_plane.kubectl("delete", "rolebinding", "-n", "kube-system", "everyone", "--ignore-not-found")
    assert run.returncode != 0, "bound its kube-system Role to every authenticated user"
    assert "denied" in run.stderr, run.stderr


def test_it_cannot_add_readers_of_kubeadm_certs(control_plane, admin, as_service_account):  # noqa: F811
    kubeadm_secrets._allow_bootstrappers_to_read_certs(admin)  # what a day-2 upload leaves
    patch = {"subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:unauthenticated"}]}
    run = as_sa(control_plane, as_service_account, "patch", "rolebinding", "-n", "kube-system", rbac.CERTS_ROLE,
                "--type=merge", "-p", yaml.safe_dump(patch))
    if run.returncode == 0:
        undo = {"subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io",
                              "name": kubeadm_secrets.NODE_GROUP}]}
        control_plane.kubectl("patch", "rolebinding", "-n", "kube-system", rbac.CERTS_ROLE, "--type=merge", "-p",
                              yaml.safe_dump(undo))
    assert run.returncode != 0, "made kubeadm-certs readable by anonymous requests"
    assert "denied" in run.stderr, run.stderr


def test_what_the_appliance_does_still_works_with_its_token(control_plane, as_service_account, generated_k8s,  # noqa: F811
                                                            certs_name_free):
    api = kube.api_client(as_service_account, control_plane.server)
    secrets = pki.from_files(lambda name: (generated_k8s / "credentials" / name).read_bytes())
    now = dt.datetime.now(dt.UTC)
    token, _ = kubeadm_secrets.mint_token(api, now, dt.timedelta(minutes=10), "bootstrap-node: review test")
    _, key = kubeadm_secrets.upload_certs(api, secrets, now, dt.timedelta(minutes=10))
    assert token.token and key
    assert kube.get(api, CERTS)["type"] == "Opaque"


def test_the_policy_type_checks_without_warnings(admin, pivoted):  # noqa: F811
    """The server type-checks each expression against the Secret and RBAC schemas; a warning would
    mean an expression that fails at admission (and, failurePolicy Fail, refuses the appliance too)."""
    for resource in guard.CONDITIONS:
        path = f"/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/{guard.policy_name(NS, resource)}"
        deadline = time.monotonic() + TOKEN_DEADLINE
        status = {}
        while "typeChecking" not in status and time.monotonic() < deadline:
            status = kube.get(admin, path).get("status") or {}
            time.sleep(0.2)
        assert "typeChecking" in status and not status["typeChecking"].get("expressionWarnings"), status


def test_a_machine_cannot_carry_a_shell_word_into_the_install_script(control_plane, pivoted):  # noqa: F811
    """Whoever may write Machines: its installDisk comes back in cluster.yaml (unpivot) and is pasted
    into the install script, which runs as root on the machine being installed."""
    from tests.k8s.test_pivot_real import machine
    bad = yaml.safe_load(machine("worker-8", installDisk="/dev/disk/by-id/x$(reboot)"))
    bad["metadata"]["namespace"] = NS
    run = control_plane.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(bad), check=False)
    assert run.returncode != 0 and "spec.installDisk in body should match" in run.stderr, run.stderr


def test_the_deployment_comes_only_after_each_policy_denied_its_probe(
        control_plane, generated_k8s, output, templates, tmp_path):  # noqa: F811
    """From the API server's audit log of a pivot into a new namespace (so new policies): every RBAC
    object, then for each policy a dry-run create as the account denied by that policy, then the
    Deployment. Without the probes the Deployment would follow the RBAC at once."""
    namespace = "audited"
    kubeconfig = tmp_path / "admin.kubeconfig"  # the appliance's own user: the one the audit log keeps
    kubeconfig.write_bytes(kube.kubeconfig_for(generated_k8s / "credentials" / "admin.kubeconfig",
                                               control_plane.server))
    mark = control_plane.audit.mark()
    result = cli("--config", str(EXAMPLE), "--output", str(output), "--templates", str(templates), "pivot",
                 "--kubeconfig", str(kubeconfig), "--namespace", namespace, "--timeout", "60")
    assert result.exit_code == 0, said(result)
    requests = control_plane.audit.since(mark)
    deployment = next(i for i, r in enumerate(requests)
                      if r.applied and r.path.endswith(f"/namespaces/{namespace}/deployments/bootstrap-node"))
    last_rbac = max(i for i, r in enumerate(requests) if r.applied and "/rbac.authorization.k8s.io/" in r.path)
    for check in probe.probes(namespace):
        denials = [i for i, r in enumerate(requests) if r.verb == "create" and r.path == check.collection
                   and r.query.get("dryRun") == ["All"] and r.impersonated == probe.account(namespace)
                   and r.code == 403 and probe.denial(namespace, check.resource) in r.causes]
        assert denials and last_rbac < denials[0] < deployment, (check.resource, denials, last_rbac, deployment)
    assert f"in force before the Deployment: ValidatingAdmissionPolicy {guard.policy_name(namespace, 'secrets')}" \
        in result.output


def test_the_attacks_fail_the_moment_pivot_returns(control_plane, admin, output, templates, tmp_path):  # noqa: F811
    """The regression test of the window: pivot into a new namespace, then at once (a TokenRequest, no
    kubectl) each attack with the account's own token, for real (not a dry run)."""
    namespace = "moment"
    result = pivot(control_plane, output, templates, "--namespace", namespace)
    assert result.exit_code == 0, said(result)
    assert_attacks_denied(control_plane, admin, namespace, tmp_path)


def assert_attacks_denied(control_plane, admin, namespace: str, tmp_path) -> None:  # noqa: F811
    """Each probe's attack, for real (not a dry run), with the account of `namespace`'s own token (a
    TokenRequest, no kubectl): each is denied by that namespace's own policy."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}}
    token = kube.create(admin, f"/api/v1/namespaces/{namespace}/serviceaccounts/{rbac.SERVICE_ACCOUNT}/token",
                        request)["status"]["token"]
    api = kube.api_client(token_kubeconfig(control_plane, token, tmp_path / f"{namespace}.kubeconfig"),
                          control_plane.server)
    answers = {check.resource: kube.answer(api, "POST", check.collection, check.body) for check in probe.probes(namespace)}
    for check in probe.probes(namespace):  # anything that got through is removed before the test fails
        if answers[check.resource][0] < 300:
            control_plane.kubectl("delete", check.resource, "-n", "kube-system", probe.PROBE_NAME)
    for resource, (status, body) in answers.items():
        message = body.get("message", "")
        assert status == 403 and f"ValidatingAdmissionPolicy '{guard.policy_name(namespace, resource)}'" in message \
            and "denied request" in message, (namespace, resource, status, message)


def in_namespace(rows: list[tuple], namespace: str) -> list[tuple]:
    """test_pivot_real's SubjectAccessReview rows, with its namespace replaced by `namespace`."""
    return [(*row[:2], namespace if row[2] == real.NS else row[2], *row[3:]) for row in rows]


def test_two_pivots_each_keep_exactly_their_own_rights(control_plane, admin, as_service_account,  # noqa: F811
                                                       output, templates, tmp_path):  # noqa: F811
    """Pivot NS, then a second namespace: the kube-system Role, the ClusterRole and their bindings
    are per namespace, so the second pivot takes nothing from the first. Then each account holds
    exactly its rights (none in the other's namespace) and its own policies deny each attack."""
    second = "second"
    result = pivot(control_plane, output, templates, "--namespace", second)
    assert result.exit_code == 0, said(result)
    for mine, theirs in ((NS, second), (second, NS)):
        for row in in_namespace(real.ALLOWED, mine):
            assert real.review(admin, *row, of=mine), (mine, row)
        for row in in_namespace(real.REFUSED, mine):
            assert not real.review(admin, *row, of=mine), (mine, row)
        for row in in_namespace(real.ALLOWED, theirs):
            if row[2] == theirs:  # what the other account may do in its own namespace, this one may not
                assert not real.review(admin, *row, of=mine), (mine, row)
        assert_attacks_denied(control_plane, admin, mine, tmp_path)


def old_pair(kind: str, name: str, namespace: str | None, rules: list[dict], account_namespace: str) -> list[dict]:
    """A Role (or ClusterRole) and its binding under a per-cluster name, as a pivot before per-namespace
    names made them."""
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    api_version = f"{rbac.RBAC_API}/v1"
    return [{"apiVersion": api_version, "kind": kind, "metadata": meta, "rules": rules},
            {"apiVersion": api_version, "kind": f"{kind}Binding", "metadata": meta,
             "roleRef": {"apiGroup": rbac.RBAC_API, "kind": kind, "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT, "namespace": account_namespace}]}]


def test_pivot_deletes_its_namespaces_old_per_cluster_rbac_and_no_one_elses(control_plane, admin, pivoted,  # noqa: F811
                                                                           output, templates):  # noqa: F811
    from app.pivot.apply import path_of
    mine = old_pair("Role", rbac.LEGACY_DAY2_ROLE, "kube-system", rbac.day2_rules(), NS)
    theirs = old_pair("ClusterRole", rbac.LEGACY_NODES_ROLE, None, rbac.node_rules(), "elsewhere")
    for obj in mine + theirs:
        kube.apply_at(admin, path_of(obj), obj)  # field manager bootstrap-node, as the old pivot's
    try:
        result = pivot(control_plane, output, templates, "--namespace", NS)
        assert result.exit_code == 0, said(result)
        assert f"deleted (its old, per-cluster name): Role and RoleBinding kube-system/{rbac.LEGACY_DAY2_ROLE}" \
            in result.output
        assert not any(kube.exists(admin, path_of(obj)) for obj in mine)
        assert all(kube.exists(admin, path_of(obj)) for obj in theirs)  # another namespace's, until it pivots
        assert real.review(admin, "create", "secrets", "kube-system", of=NS)  # under its new name
        assert real.review(admin, "list", "nodes", of="elsewhere")  # what it held is untouched
    finally:
        for obj in theirs:
            kube.answer(admin, "DELETE", path_of(obj))
