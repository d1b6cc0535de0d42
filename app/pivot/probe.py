"""Whether the admission policies of app/pivot/guard.py are in force: the requests that test it, and
the pure decision on each answer.

kube-apiserver enforces a newly created ValidatingAdmissionPolicy only once its admission plugin has
learnt both the policy and its binding, some time after the create (longer on a loaded server). The
RBAC applied after the policies grants `create` on Secrets, Roles and RoleBindings in kube-system at
once, so until then the ServiceAccount is unconfined. No one holds its token before the Deployment's
pods run, so pivot applies the Deployment only after a request as that account, of what each policy
forbids, has been denied by that very policy.

Each probe is a server-side dry run (`dryRun=All`: admission runs, nothing is stored) of a create,
sent by the pivoting admin as the account (`Impersonate-User`; the API server adds a ServiceAccount's
groups itself). One per policy, since the server learns each on its own. The authorizer also learns
the new RBAC late, and a request it refuses never reaches admission, so a 403 from RBAC (or from its
escalation check on Roles and RoleBindings) proves nothing and the probe is asked again. Only the
policy's own denial counts: HTTP 403 with a cause that is exactly its message, under its name.
Each probe asks only for rights the account holds, so once RBAC has settled it gets past the
authorizer and the escalation check to admission.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from app.pivot.guard import CONDITIONS, policy_name
from app.pivot.rbac import KUBE_SYSTEM, RBAC_API, SERVICE_ACCOUNT, day2_role

PROBE_NAME = "bootstrap-node-probe"  # what no one else names an object in kube-system
DRY_RUN = [("dryRun", "All")]
# A kube-system controller's account, as in the attack the Secrets policy stops (a dry run: no token is made).
VICTIM = "namespace-controller"
RBAC_REFUSALS = ("cannot create resource", "attempting to grant RBAC permissions not currently held")


@dataclass(frozen=True)
class Probe:
    resource: str  # the guarded resource: its policy is guard.policy_name(namespace, resource)
    collection: str  # the path the create is POSTed to
    body: dict

    def headers(self, namespace: str) -> dict[str, str]:
        return {"Impersonate-User": account(namespace), "Content-Type": "application/json",
                "Accept": "application/json"}


def account(namespace: str) -> str:
    return f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"


def probes(namespace: str) -> list[Probe]:
    """For each policy, an attack it exists to stop (the ones tests/k8s/test_pivot_attacks.py makes)."""
    meta = {"name": PROBE_NAME, "namespace": KUBE_SYSTEM}
    rbac = f"/apis/{RBAC_API}/v1/namespaces/{KUBE_SYSTEM}"
    return [
        Probe("secrets", f"/api/v1/namespaces/{KUBE_SYSTEM}/secrets",
              {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
               "metadata": {**meta, "annotations": {"kubernetes.io/service-account.name": VICTIM}}}),
        # Secret creation is a right the account holds, so the escalation check lets this Role through.
        Probe("roles", f"{rbac}/roles",
              {"apiVersion": f"{RBAC_API}/v1", "kind": "Role", "metadata": meta,
               "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]}),
        # Its own Role, handed to every authenticated user.
        Probe("rolebindings", f"{rbac}/rolebindings",
              {"apiVersion": f"{RBAC_API}/v1", "kind": "RoleBinding", "metadata": meta,
               "roleRef": {"apiGroup": RBAC_API, "kind": "Role", "name": day2_role(namespace)},
               "subjects": [{"apiGroup": RBAC_API, "kind": "Group", "name": "system:authenticated"}]}),
    ]


def denial(namespace: str, resource: str) -> str:
    """The cause kube-apiserver gives when that policy denies a request (its admission plugin's format)."""
    name = policy_name(namespace, resource)
    return f"ValidatingAdmissionPolicy '{name}' with binding '{name}' denied request: {CONDITIONS[resource][2]}"


class State(enum.Enum):
    IN_FORCE = "in force"
    NOT_YET = "not yet"  # ask again, until the deadline
    REFUSED = "refused"  # asking again will not help: the reason says why


@dataclass(frozen=True)
class Verdict:
    state: State
    reason: str


def verdict(namespace: str, probe: Probe, status: int, body: dict) -> Verdict:
    """What one answer to `probe` says about its policy."""
    message = str(body.get("message", ""))[:500]
    causes = [str(c.get("message", "")) for c in ((body.get("details") or {}).get("causes") or [])]
    if 200 <= status < 300:
        return Verdict(State.NOT_YET, f"allowed: {policy_name(namespace, probe.resource)} is not enforced yet")
    if status == 403 and denial(namespace, probe.resource) in causes:
        return Verdict(State.IN_FORCE, f"denied by {policy_name(namespace, probe.resource)}")
    if status == 403 and "cannot impersonate" in message:
        return Verdict(State.REFUSED, f"this kubeconfig's user may not impersonate {account(namespace)}, which "
                                      f"pivot does to check its admission policies: {message}")
    if status == 403 and account(namespace) in message and any(phrase in message for phrase in RBAC_REFUSALS):
        return Verdict(State.NOT_YET, f"refused by RBAC, which the API server has not learnt yet: {message}")
    return Verdict(State.REFUSED, f"HTTP {status}, not the policy's denial, so whether it is in force cannot be "
                                  f"told: {message or body}")
