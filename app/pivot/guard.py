"""What RBAC cannot say about the appliance's writes in kube-system, said by a ValidatingAdmissionPolicy.

RBAC cannot limit `create` by name, nor any verb by content. Without this policy the ServiceAccount's
`create secrets` in kube-system would let it create a `kubernetes.io/service-account-token` Secret for
a controller's account there (the token controller fills it in) named `kubeadm-certs`, the one Secret
it may read, whenever that name is free (kubeadm-certs dies with its 2-hour lifetime token): a token
that reads every Secret. Its `create rolebindings` would let it bind its own kube-system Role to any
subject (the escalation check passes: it holds those rights), and its rights on kubeadm's
`kubeadm:kubeadm-certs` binding would let it add readers of the encrypted CA keys.

So, for requests from that account only, in any namespace, a create or update is allowed only for
what app/wait/kubeadm_secrets.py writes: bootstrap-token Secrets (`bootstrap-token-*`, their type),
kubeadm-certs as an Opaque Secret, and the kubeadm-certs Role and RoleBinding exactly as kubeadm
makes them (read that one Secret; bound to the node bootstrappers' group).

Applied before the RBAC that grants those rights (see manifests.render). The API server enforces a
new policy only a while after its create, so the Deployment, whose pods are the only holders of the
account's token, is applied once each policy has been seen to deny (app/pivot/probe.py).
"""

from __future__ import annotations

from app.pivot.rbac import CERTS_ROLE, CERTS_SECRET, SERVICE_ACCOUNT
from app.wait.kubeadm_secrets import NODE_GROUP, TOKEN_TYPE

ADMISSION_API = "admissionregistration.k8s.io/v1"
RBAC_GROUP = "rbac.authorization.k8s.io"


def policy_name(namespace: str, resource: str) -> str:
    """Cluster-scoped, so one per namespace pivot used (each has its own ServiceAccount)."""
    return f"bootstrap-node.io-{namespace}-{resource}"


# resource -> (API group, the one condition its objects must meet, what a refusal says). One policy per
# resource: the server type-checks each expression against every kind its policy matches.
CONDITIONS = {
    "secrets": ("",
                f"(object.metadata.name.startsWith('bootstrap-token-') && object.type == '{TOKEN_TYPE}') || "
                f"(object.metadata.name == '{CERTS_SECRET}' && object.type == 'Opaque')",
                f"bootstrap-node may create only bootstrap-token Secrets ({TOKEN_TYPE}) and {CERTS_SECRET} (Opaque)"),
    "roles": (RBAC_GROUP,
              f"object.metadata.name == '{CERTS_ROLE}' && has(object.rules) && object.rules.all(r, "
              f"r.apiGroups == [''] && r.resources == ['secrets'] && r.verbs == ['get'] && "
              f"has(r.resourceNames) && r.resourceNames == ['{CERTS_SECRET}'])",
              f"bootstrap-node may write only the Role {CERTS_ROLE}, reading the Secret {CERTS_SECRET}"),
    "rolebindings": (RBAC_GROUP,
                     f"object.metadata.name == '{CERTS_ROLE}' && object.roleRef.kind == 'Role' && "
                     f"object.roleRef.name == '{CERTS_ROLE}' && has(object.subjects) && "
                     f"object.subjects.all(s, s.kind == 'Group' && s.name == '{NODE_GROUP}')",
                     f"bootstrap-node may write only the RoleBinding {CERTS_ROLE}, of that Role to {NODE_GROUP}"),
}


def guard_objects(namespace: str, labels: dict) -> list[dict]:
    """Each policy and its binding (Deny), in apply order."""
    user = f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
    out = []
    for resource, (group, condition, message) in CONDITIONS.items():
        name = policy_name(namespace, resource)
        rule = {"apiGroups": [group], "apiVersions": ["v1"], "resources": [resource],
                "operations": ["CREATE", "UPDATE"]}
        out.append({"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicy",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"failurePolicy": "Fail",
                             "matchConstraints": {"resourceRules": [rule], "matchPolicy": "Equivalent"},
                             "matchConditions": [{"name": "the-appliance",
                                                  "expression": f"request.userInfo.username == '{user}'"}],
                             "validations": [{"expression": condition, "reason": "Forbidden", "message": message}]}})
        out.append({"apiVersion": ADMISSION_API, "kind": "ValidatingAdmissionPolicyBinding",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"policyName": name, "validationActions": ["Deny"]}})
    return out
