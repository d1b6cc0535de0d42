"""app/pivot/probe.py's decision on each answer, and app/pivot/apply.py applying nothing that runs
pods before every policy has denied its probe (answers scripted; clock and sleep injected). The
answers' shapes are kube-apiserver's: tests/k8s/test_pivot_real.py sees the real ones."""

from __future__ import annotations

import pytest

from app.pivot import probe
from app.pivot.apply import NotInForce, Sender
from app.pivot.guard import policy_name
from app.wait import kube
from tests.unit.test_pivot_apply import Clock
from tests.unit.test_pivot_manifests import objects, state  # noqa: F401  (fixtures)

NS = "prov"
USER = probe.account(NS)
SECRETS, ROLES, BINDINGS = probe.probes(NS)


def denied(resource: str, cause: str | None = None, status: int = 403) -> tuple[int, dict]:
    """The admission plugin's answer: reason Forbidden, the cause its message under the policy's name."""
    cause = probe.denial(NS, resource) if cause is None else cause
    return status, {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": status,
                    "message": f'{resource} "{probe.PROBE_NAME}" is forbidden: {cause}',
                    "details": {"name": probe.PROBE_NAME, "kind": resource, "causes": [{"message": cause}]}}


def forbidden(message: str) -> tuple[int, dict]:
    """RBAC's answer (or the impersonation filter's): no causes."""
    return 403, {"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403, "message": message,
                 "details": {"kind": "secrets"}}


RBAC = f'secrets is forbidden: User "{USER}" cannot create resource "secrets" in API group "" in the namespace ' \
       '"kube-system"'
ESCALATION = f'roles.rbac.authorization.k8s.io "{probe.PROBE_NAME}" is forbidden: user "{USER}" (groups=[' \
             '"system:serviceaccounts"]) is attempting to grant RBAC permissions not currently held'
IMPERSONATE = f'serviceaccounts "bootstrap-node" is forbidden: User "someone" cannot impersonate resource ' \
              f'"serviceaccounts" in API group "" in the namespace "{NS}"'
OTHER_USER_RBAC = 'secrets is forbidden: User "someone-else" cannot create resource "secrets"'
ANOTHER_POLICY = "ValidatingAdmissionPolicy 'site-rules' with binding 'site-rules' denied request: no"


@pytest.mark.parametrize("check, answer, expected", [
    (SECRETS, denied("secrets"), probe.State.IN_FORCE),
    (ROLES, denied("roles"), probe.State.IN_FORCE),
    (BINDINGS, denied("rolebindings"), probe.State.IN_FORCE),
    (SECRETS, (201, {"kind": "Secret"}), probe.State.NOT_YET),  # the window: the attack would work
    (SECRETS, forbidden(RBAC), probe.State.NOT_YET),  # RBAC not learnt yet: admission never asked
    (ROLES, forbidden(ESCALATION), probe.State.NOT_YET),
    (SECRETS, denied("roles"), probe.State.REFUSED),  # another of our policies' words: not this one's
    (SECRETS, denied("secrets", status=422), probe.State.REFUSED),
    (SECRETS, denied("secrets", cause=ANOTHER_POLICY), probe.State.REFUSED),  # someone else's policy
    (SECRETS, forbidden(IMPERSONATE), probe.State.REFUSED),
    (SECRETS, forbidden(OTHER_USER_RBAC), probe.State.REFUSED),  # RBAC, but not about the account
    (SECRETS, (422, {"message": "Secret is invalid"}), probe.State.REFUSED),
    (SECRETS, (409, {"message": "already exists"}), probe.State.REFUSED),
])
def test_the_verdict_on_each_answer(check, answer, expected):
    assert probe.verdict(NS, check, *answer).state is expected


def test_a_refusal_says_why():
    found = probe.verdict(NS, SECRETS, *forbidden(IMPERSONATE))
    assert f"may not impersonate {USER}" in found.reason and "cannot impersonate resource" in found.reason


def test_each_policy_has_one_probe_of_what_it_forbids():
    assert [p.resource for p in probe.probes(NS)] == ["secrets", "roles", "rolebindings"]
    assert SECRETS.body["type"] == "kubernetes.io/service-account-token"
    assert ROLES.body["metadata"]["name"] != "kubeadm:kubeadm-certs"
    assert BINDINGS.body["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                          "name": "system:authenticated"}]
    assert all(p.body["metadata"]["namespace"] == "kube-system" for p in probe.probes(NS))
    assert SECRETS.headers(NS)["Impersonate-User"] == "system:serviceaccount:prov:bootstrap-node"


class Server:
    """Scripted answers per probed collection (the last one repeats); a record of every call."""

    def __init__(self, answers: dict[str, list]):
        self.answers, self.calls = answers, []

    def answer(self, api, method, path, body=None, headers=None, query=None):
        if method == "GET":  # apply's look at whether the namespace is someone else's: it does not exist yet
            self.calls.append(("get", path))
            return 404, {}
        if path == "/api/v1/namespaces":  # ... so apply creates it first, and marks it as its own
            self.calls.append(("create", body["metadata"]["name"]))
            return 201, {**body, "metadata": {**body["metadata"], "uid": "uid-1"}}
        if method == "PATCH" and path.startswith("/api/v1/namespaces/"):
            self.calls.append(("mark", path))
            return 200, {}
        self.calls.append(("probe", body["kind"], headers["Impersonate-User"], tuple(query)))
        queue = self.answers[body["kind"]]
        found = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(found, Exception):
            raise found
        return found

    def apply_at(self, api, path, body, *, dry_run=False):
        self.calls.append(("apply", body["kind"], dry_run))
        return body


@pytest.fixture
def server(monkeypatch):
    def install(answers):
        fake = Server(answers)
        monkeypatch.setattr(kube, "answer", fake.answer)
        monkeypatch.setattr(kube, "apply_at", fake.apply_at)
        monkeypatch.setattr(Sender, "wait_established", lambda self, name: None)
        return fake
    return install


def sender(timeout: float = 10) -> Sender:
    clock = Clock()
    return Sender(None, timeout, sleep=clock.sleep, poll=1.0, clock=lambda: clock.now)


IN_FORCE = {"Secret": [denied("secrets")], "Role": [denied("roles")], "RoleBinding": [denied("rolebindings")]}


def test_the_deployment_is_applied_only_after_every_probe_is_denied(server, objects):  # noqa: F811
    fake = server({**IN_FORCE, "Secret": [(201, {}), forbidden(RBAC), kube.Transient("reset"), denied("secrets")]})
    outcome = sender().apply(objects)
    assert [c for c in fake.calls if c[0] == "apply"] == [("apply", o["kind"], False) for o in objects]
    deployment = fake.calls.index(("apply", "Deployment", False))
    probes = [c for c in fake.calls[:deployment] if c[0] == "probe"]
    assert fake.calls[deployment - 6:deployment] == probes  # 4 tries of the Secret, 1 of each other, then it
    assert all(c[2] == "system:serviceaccount:prov:bootstrap-node" and c[3] == (("dryRun", "All"),) for c in probes)
    assert not [c for c in fake.calls[deployment:] if c[0] == "probe"]
    assert [line.split()[1] for line in outcome.in_force] == [policy_name("prov", r)
                                                              for r in ("roles", "rolebindings", "secrets")]
    assert outcome.applied[outcome.in_force_after] == "Deployment prov/bootstrap-node"


def test_the_probes_come_after_every_rbac_object(server, objects):  # noqa: F811
    fake = server(IN_FORCE)
    sender().apply(objects)
    first_probe = next(i for i, c in enumerate(fake.calls) if c[0] == "probe")
    applied_before = [c[1] for c in fake.calls[:first_probe]]
    rbac_kinds = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    assert rbac_kinds <= set(applied_before)
    assert fake.calls[first_probe - 1][1] != "Deployment" and "Deployment" not in applied_before


def test_never_in_force_applies_nothing_further(server, objects):  # noqa: F811
    fake = server({**IN_FORCE, "RoleBinding": [(201, {})]})
    with pytest.raises(NotInForce, match=f"{policy_name('prov', 'rolebindings')}: allowed"):
        sender(timeout=5).apply(objects)
    applied = [c[1] for c in fake.calls if c[0] == "apply"]
    assert "Deployment" not in applied  # the one thing that gives a pod the token
    assert applied == [o["kind"] for o in objects[:len(applied)]]


def test_a_refused_probe_stops_at_once(server, objects):  # noqa: F811
    fake = server({**IN_FORCE, "Secret": [forbidden(IMPERSONATE)]})
    with pytest.raises(kube.Forbidden, match="may not impersonate"):
        sender().apply(objects)
    assert sum(c[0] == "probe" and c[1] == "Secret" for c in fake.calls) == 1
    assert ("apply", "Deployment", False) not in fake.calls


def test_a_server_dry_run_does_not_probe(server, objects, monkeypatch):  # noqa: F811
    monkeypatch.setattr(kube, "exists", lambda api, path: True)
    fake = server(IN_FORCE)
    outcome = sender().apply(objects, dry_run=True)
    assert not [c for c in fake.calls if c[0] == "probe"] and outcome.in_force == []
    assert ("apply", "Deployment", True) in fake.calls
