"""What `wait` installs once the API answers, in order: the CNI (flannel manifest with the pod
subnet filled in, or `cilium install`), the user's add-ons, then the GitOps hand-off (Argo CD and a
root Application). Everything is server-side applied, so running it again changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.atomic_file import atomic_write
from app.cluster import Cluster
from app.wait import kube

ARGOCD_NAMESPACE = "argocd"
KURED = "kured.yaml"  # the built-in add-on that coordinates reboots (cluster.yaml `reboots: kured`)
FLANNEL_CONFIG = "kube-flannel-cfg"


@dataclass
class Plan:
    cluster: Cluster
    cni_manifest: Path | None  # flannel
    user: list[Path] = field(default_factory=list)
    argocd_manifest: Path | None = None
    wait_gitops: bool = False


def find_template(name: str, override: Path | None, builtin: Path) -> Path | None:
    for directory in (override, builtin):
        if directory is not None and (directory / name).is_file():
            return directory / name
    return None


def make_plan(cluster: Cluster, override: Path | None, builtin: Path, wait_gitops: bool = False) -> Plan:
    user: dict[str, Path] = {}
    for directory in (builtin, override):
        if directory is not None and (directory / "addons").is_dir():
            user.update({p.name: p for p in (directory / "addons").glob("*.yaml")})
    if cluster.reboots == "none":
        user.pop(KURED, None)
    return Plan(cluster, find_template("cni/flannel.yaml", override, builtin) if cluster.cni == "flannel" else None,
                [user[n] for n in sorted(user)], find_template("gitops/argo-cd.yaml", override, builtin), wait_gitops)


def with_pod_subnet(manifests: list[kube.Manifest], subnet: str) -> list[kube.Manifest]:
    """flannel's net-conf.json carries the pod network; make it cluster.yaml's pod_subnet."""
    out = []
    for m in manifests:
        body = m.body
        if body.get("kind") == "ConfigMap" and body["metadata"]["name"] == FLANNEL_CONFIG:
            net = json.loads(body.get("data", {}).get("net-conf.json", "{}"))
            net["Network"] = subnet
            body = {**body, "data": {**body["data"], "net-conf.json": json.dumps(net, indent=2) + "\n"}}
        out.append(kube.Manifest(m.source, m.index, body))
    return out


def cilium_args(cluster: Cluster) -> list[str]:
    options = cluster.cilium
    args = ["install", "--set", "ipam.mode=kubernetes"]
    if options and options.wireguard:
        args += ["--set", "encryption.enabled=true", "--set", "encryption.type=wireguard"]
    if options and options.kube_proxy_replacement:
        args += ["--set", "kubeProxyReplacement=true", "--set", f"k8sServiceHost={cluster.control_plane_address}",
                 "--set", "k8sServicePort=6443"]
    return args


def root_application(cluster: Cluster) -> dict:
    g = cluster.gitops
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "root", "namespace": ARGOCD_NAMESPACE},
            "spec": {"project": "default",
                     "source": {"repoURL": g.repo, "targetRevision": g.revision, "path": g.path},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": ARGOCD_NAMESPACE},
                     "syncPolicy": {"automated": {"prune": True, "selfHeal": True}}}}


class Installer:
    """Runs a Plan against one API endpoint. Transient errors are retried until `deadline`."""

    def __init__(self, api, plan: Plan, output: Path, deadline: float, sleep: Callable[[float], None], say,
                 poll: float = 5.0):
        self.api, self.plan, self.output, self.deadline, self.sleep, self.say = api, plan, output, deadline, sleep, say
        self.poll = poll
        self.applier = kube.Applier(api)

    def run(self) -> None:
        """Raises kube.Fatal (exit 5) with the file and object that failed."""
        cluster = self.plan.cluster
        if cluster.cni == "flannel":
            if self.plan.cni_manifest is None:
                raise kube.Fatal("cni: flannel, but no cni/flannel.yaml in the templates (the image bakes it; "
                                 "outside the image put the manifest there, or use cni: none)")
            self._apply(with_pod_subnet(kube.load_manifests([self.plan.cni_manifest]), str(cluster.cluster.pod_subnet)))
        elif cluster.cni == "cilium":
            self._cilium()
        self._apply(kube.load_manifests(self.plan.user))
        if cluster.gitops:
            self._gitops()

    def _retry(self, action, what: str):
        while True:
            try:
                return action()
            except kube.Transient as exc:
                if time.monotonic() > self.deadline:
                    raise kube.Fatal(f"{what}: {exc}") from None
                self.sleep(self.poll)

    def _apply(self, manifests: list[kube.Manifest], namespace: str = "default") -> None:
        for manifest in manifests:
            self._retry(lambda m=manifest: self.applier.apply(m, namespace), f"{manifest.source}: {manifest.name}")
        if manifests:
            files = ", ".join(sorted({Path(m.source).name for m in manifests}))
            self.say(f"applied {len(manifests)} objects from {files}")

    def _cilium(self) -> None:
        if self._retry(lambda: kube.exists(self.api, "/apis/apps/v1/namespaces/kube-system/daemonsets/cilium"),
                       "looking for Cilium"):
            self.say("cilium is already installed")
            return
        kubeconfig = self.output / "run" / "cilium.kubeconfig"
        atomic_write(kubeconfig, kube.kubeconfig_for(self.output / "credentials" / "admin.kubeconfig",
                                                     self.api.configuration.host), 0o600)
        command = ["cilium", *cilium_args(self.plan.cluster)]
        try:
            result = subprocess.run(command, env={**os.environ, "KUBECONFIG": str(kubeconfig)},
                                    capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            raise kube.Fatal("cni: cilium, but the cilium CLI is not on PATH (build it with "
                             "scripts/cilium-cli-binary; the image bakes it from ASSETS_DIR/bin/cilium, "
                             "see docs/install-and-assets.md)") from None
        except subprocess.TimeoutExpired:
            raise kube.Fatal("cilium install did not finish within 600s") from None
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise kube.Fatal(f"{' '.join(command)} exited with {result.returncode}:\n{tail}")
        self.say(f"ran {' '.join(command)}")

    def _gitops(self) -> None:
        if self.plan.argocd_manifest is None:
            raise kube.Fatal("gitops is set, but there is no gitops/argo-cd.yaml in the templates (the image "
                             "bakes it unless built with ARGOCD_VERSION=none; `assets fetch` puts it in "
                             "DIR/gitops/ for a cluster with gitops)")
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ARGOCD_NAMESPACE}}
        self._apply([kube.Manifest("gitops", 0, namespace)])
        self._apply(kube.load_manifests([self.plan.argocd_manifest]), ARGOCD_NAMESPACE)
        while not self._retry(lambda: kube.deployments_available(self.api, ARGOCD_NAMESPACE), "Argo CD"):
            if time.monotonic() > self.deadline:
                raise kube.Fatal("Argo CD's Deployments did not become Available in time")
            self.sleep(self.poll)
        self._apply([kube.Manifest("gitops", 0, root_application(self.plan.cluster))])
        path = f"/apis/argoproj.io/v1alpha1/namespaces/{ARGOCD_NAMESPACE}/applications/root"
        while True:
            status = self._retry(lambda: kube.get(self.api, path), "the root Application").get("status", {})
            sync = status.get("sync", {}).get("status", "Unknown")
            self.say(f"root Application: sync {sync}, health {status.get('health', {}).get('status', 'Unknown')}")
            if not self.plan.wait_gitops or sync == "Synced":
                return
            if time.monotonic() > self.deadline:
                raise kube.Fatal(f"the root Application is {sync}, not Synced, after the timeout")
            self.sleep(self.poll)
