"""The appliance as a workload: its Namespace and a Deployment of two replicas on the nodes labelled
as being on the provisioning network, one per node.

Why these settings:
- `hostNetwork`: proxy DHCP (67/udp, 4011/udp) and TFTP (69/udp) answer broadcasts on the provisioning
  L2 segment, which no Service or pod network carries; the HTTP port is the one the boot URLs name.
- capabilities, not `privileged`: NET_BIND_SERVICE for ports below 1024, NET_RAW and NET_ADMIN for
  dnsmasq's DHCP sockets and the neighbour table; everything else dropped. NET_ADMIN on the host's
  network can change its routes and firewall, so the runtime's default seccomp filter as well.
- required anti-affinity: two replicas on one node would fight over the same host ports and
  survive nothing a node failure takes; the rolling update removes a pod before adding one (no surge)
  for the same reason.
- a toleration for the control-plane taint: controllers are often the machines on that network.
- the Namespace enforces Pod Security `privileged`: hostNetwork is outside `baseline`.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.layout import PROXY_DHCP_PORT, TFTP_PORT
from app.pivot.rbac import LEASE, SERVICE_ACCOUNT
from app.serve.cluster.gate import HEALTH

DEPLOYMENT = "bootstrap-node"
OUTPUT_TREE = "/output/tree"
REPLICAS = 2
DHCP_PORT = 67  # proxy DHCP listens on the DHCP server port too (dnsmasq's --dhcp-proxy)
DEFAULT_NODE_SELECTOR = ("bootstrap-node.io/provisioning", "true")
# Stated, not yet measured in a pod (no kubelet runs in the tests): the request is what one serve and its
# dnsmasq need idle on the appliance; the memory limit bounds a burst of installs pulling images through it.
RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}


@dataclass(frozen=True)
class Workload:
    namespace: str
    image: str
    node_selector: dict[str, str]
    http_port: int
    labels: dict[str, str]


def namespace_object(namespace: str, labels: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {**labels, "pod-security.kubernetes.io/enforce": "privileged"}}}


def _container(w: Workload) -> dict:
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    ports = [{"name": "http", "containerPort": w.http_port, "protocol": "TCP"},
             {"name": "dhcp", "containerPort": DHCP_PORT, "protocol": "UDP"},
             {"name": "proxy-dhcp", "containerPort": PROXY_DHCP_PORT, "protocol": "UDP"},
             {"name": "tftp", "containerPort": TFTP_PORT, "protocol": "UDP"}]
    return {
        "name": "serve", "image": w.image, "imagePullPolicy": "IfNotPresent",
        # --from-cluster renders /output/tree from the Machines (a subdirectory: the tree is switched by
        # rename, which a mount point refuses).
        "args": ["serve", "--output", OUTPUT_TREE, "--listen", f"0.0.0.0:{w.http_port}", "--from-cluster",
                 "--cluster-namespace", w.namespace, "--leader-elect", "--lease-namespace", w.namespace,
                 "--lease-name", LEASE, "--identity", "$(POD_NAME)"],
        "env": env, "ports": ports, "resources": RESOURCES,
        # /healthz answers on every replica, leader or standby; /readyz only on the leader, so it is not the
        # readiness probe: a Ready standby is what lets a rolling update (no surge) move on to the next pod.
        "readinessProbe": {"httpGet": {"path": HEALTH, "port": "http"}, "periodSeconds": 10,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": HEALTH, "port": "http"}, "initialDelaySeconds": 15,
                          "periodSeconds": 20, "failureThreshold": 3},
        "securityContext": {"privileged": False, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "seccompProfile": {"type": "RuntimeDefault"},  # a kubelet's default is Unconfined
                            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]}},
        "volumeMounts": [{"name": "output", "mountPath": "/output"}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def deployment(w: Workload) -> dict:
    selector = {"app.kubernetes.io/name": "bootstrap-node", "app.kubernetes.io/component": "serve"}
    pod = {
        "metadata": {"labels": {**w.labels, **selector}},
        "spec": {
            "serviceAccountName": SERVICE_ACCOUNT, "hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet",
            "nodeSelector": w.node_selector,
            "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}]}},
            "containers": [_container(w)],
            # The tree `serve --from-cluster` renders from the API at start and on every Machine change.
            "volumes": [{"name": "output", "emptyDir": {}}, {"name": "tmp", "emptyDir": {"medium": "Memory",
                                                                                         "sizeLimit": "64Mi"}}],
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": DEPLOYMENT, "namespace": w.namespace, "labels": {**w.labels, **selector}},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": selector},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
                     "template": pod}}
