"""`serve --from-cluster --leader-elect` as the Deployment's pod runs it: no kubeconfig, the in-cluster
configuration only. Its ServiceAccount's token comes from the real TokenRequest API and lies, with the
cluster's CA and the namespace, in a directory laid out as the kubelet mounts it
(BOOTSTRAP_NODE_SERVICE_ACCOUNT_DIR names it; no kubelet runs here to mount the real one), and
KUBERNETES_SERVICE_HOST/PORT name the API server, as in a pod. So every call cluster mode makes is
made with the least-privilege RBAC `pivot` grants, against the real API server, and its audit log says
who made each one: join tokens are minted as the ServiceAccount, and nothing it asked was refused.

The cluster was pivoted as `wait` leaves it (the cluster record says it exists), so the first render
mints join tokens for the nodes not yet in the cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from app import pki
from app.cluster_record import JOIN_TOKENS
from app.pivot import rbac
from app.pivot.state import TEMPLATES_CONFIGMAP
from app.serve.cluster import in_cluster
from app.wait import kube
from tests.k8s.test_cluster_mode_real import from_cluster, get, machine, pivot_into, request, source_of
from tests.support.audit import service_account_user
from tests.support.paths import REPO
from tests.support.processes import wait_for
from tests.support.serve import bearer, credential_in

NS = "in-pod"  # one of tests/support/audit.py's SERVICE_ACCOUNT_NAMESPACES: its requests are logged
SA_USER = service_account_user(NS)
IDENTITY = "pod-1"
PROFILE = "profiles/install.json.tmpl"
NEW = {"name": "worker-8", "mac": "52:54:00:00:00:28", "ip": "10.0.0.28"}
JOINING = "52:54:00:00:00:12"  # cp-2: in the cluster's record, not registered, so it installs


@dataclass
class Pod:
    url: str
    out: Path
    log: Path
    proc: subprocess.Popen
    mark: int  # the audit log's end before serve started


def install_profile(marker: str) -> str:
    """The built-in install profile with one more kernel argument, `marker`."""
    builtin = (REPO / "app" / "templates" / PROFILE).read_text()
    return builtin.replace('"console=tty0",', f'"console=tty0", "{marker}",')


def service_account_files(control_plane, admin, where: Path) -> Path:
    """token, ca.crt and namespace as the kubelet mounts them; the token from the TokenRequest API."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    answer = kube.create(admin, f"/api/v1/namespaces/{NS}/serviceaccounts/{rbac.SERVICE_ACCOUNT}/token", request)
    where.mkdir(mode=0o700)
    (where / in_cluster.TOKEN).write_text(answer["status"]["token"])
    (where / in_cluster.TOKEN).chmod(0o600)
    shutil.copyfile(control_plane.etc / "pki" / "ca.crt", where / in_cluster.CA)
    (where / in_cluster.NAMESPACE).write_text(NS)
    return where


@pytest.fixture(scope="module")
def admin(control_plane):
    return kube.api_client(control_plane.admin_conf, control_plane.server)


@pytest.fixture(scope="module")
def pod(control_plane, admin, generated_k8s, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("in-pod")
    templates = tmp / "templates"
    (templates / "profiles").mkdir(parents=True)
    (templates / PROFILE).write_text(install_profile("bn.marker=one"))
    server = urlsplit(control_plane.server)
    with control_plane.inside():
        pivot_into(control_plane, generated_k8s, tmp, NS, templates, recorded=True)
        accounts = service_account_files(control_plane, admin, tmp / "serviceaccount")
    env = {**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, in_cluster.DIR_ENV: str(accounts),
           "KUBERNETES_SERVICE_HOST": server.hostname, "KUBERNETES_SERVICE_PORT": str(server.port)}
    mark = control_plane.audit.mark()
    # No --kubeconfig, no --cluster-namespace, no --lease-namespace: the pod's files say it all.
    with from_cluster(control_plane, tmp, "--leader-elect", "--identity", IDENTITY, env=env) as running:
        url, out, log, proc = running
        yield Pod(url, out, log, proc, mark)


def kubectl(control_plane, *args: str, stdin: str | None = None):
    return control_plane.kubectl("-n", NS, *args, stdin=stdin)


def its_requests(control_plane, pod: Pod):
    return control_plane.audit.since(pod.mark, users=(SA_USER, pki.ADMIN_USER))


def test_it_leads_through_the_lease_with_the_pods_token(control_plane, pod):
    holder = kubectl(control_plane, "get", "lease", rbac.LEASE, "-o", "jsonpath={.spec.holderIdentity}").stdout
    assert holder == IDENTITY
    assert (pod.out / "matchbox" / "groups" / "cp-2.json").is_file()
    assert any(r.path.startswith(f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases") and r.wrote
               for r in its_requests(control_plane, pod))


def test_join_tokens_are_minted_as_the_service_account(control_plane, admin, pod):
    requests = its_requests(control_plane, pod)
    created = [r for r in requests if r.verb == "create" and r.path == "/api/v1/namespaces/kube-system/secrets"]
    assert created and all(r.user == SA_USER for r in created), created
    minted = json.loads((pod.out / JOIN_TOKENS).read_text())["nodes"]
    assert {"cp-2", "worker-1"} <= set(minted), minted
    # A token Secret per node, and kubeadm-certs' lifetime token; kubeadm-certs itself may exist (409).
    assert len([r for r in created if r.code == 201]) > len(minted), created
    assert {r.code for r in created} <= {201, 409}, created
    assert not [r for r in requests if r.user == pki.ADMIN_USER], "serve used an admin certificate"
    token_id = minted["cp-2"]["token"].split(".")[0]
    assert kube.exists(admin, f"/api/v1/namespaces/kube-system/secrets/bootstrap-token-{token_id}")


def test_a_template_edit_takes_effect_without_a_restart(control_plane, pod):
    assert b"bn.marker=one" in get(pod.url, f"/ipxe?mac={JOINING}", JOINING)[1]
    key = PROFILE.replace("/", "_")
    patch = json.dumps({"data": {key: install_profile("bn.marker=two")}})
    kubectl(control_plane, "patch", "configmap", TEMPLATES_CONFIGMAP, "--type", "merge", "-p", patch)
    wait_for(lambda: b"bn.marker=two" in get(pod.url, f"/ipxe?mac={JOINING}", JOINING)[1], timeout=30,
             what="the edited template to be served")
    assert pod.proc.poll() is None  # the same process: no restart
    assert (pod.out / "templates" / PROFILE).read_text() == install_profile("bn.marker=two")
    assert "not taken while it runs" not in pod.log.read_text()  # the Secret did not change: no warning


def test_a_provisioning_cluster_edit_takes_effect_without_a_restart(control_plane, pod):
    """The rest of cluster.yaml: bootstrap.http_port is in every install's Ignition URL."""
    name = kubectl(control_plane, "get", "provisioningclusters", "-o", "jsonpath={.items[0].metadata.name}").stdout
    assert b":8080/ignition" in get(pod.url, f"/ipxe?mac={JOINING}", JOINING)[1]
    edit = json.dumps({"spec": {"bootstrap": {"http_port": 8081}}})
    kubectl(control_plane, "patch", "provisioningcluster", name, "--type", "merge", "-p", edit)
    wait_for(lambda: b":8081/ignition" in get(pod.url, f"/ipxe?mac={JOINING}", JOINING)[1], timeout=30,
             what="the edited ProvisioningCluster to be served")
    assert pod.proc.poll() is None


def test_a_machine_reports_its_phase_as_the_service_account(control_plane, pod):
    manifest = yaml.safe_load(machine(NEW["name"], NEW["mac"], NEW["ip"]))
    manifest["metadata"]["namespace"] = NS
    kubectl(control_plane, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    mac, me = NEW["mac"], source_of(NEW["mac"])
    wait_for(lambda: b"kernel " in get(pod.url, f"/ipxe?mac={mac}", mac)[1], timeout=30,
             what="the new Machine's PXE boot to be answered")
    status, install = get(pod.url, f"/ignition?mac={mac}", mac)
    assert status == 200, install
    sent = request(pod.url, "/events", "POST", {"mac": mac, "phase": "installed"}, bearer(credential_in(install)),
                   source=me)
    assert sent[0] == 200, sent
    wait_for(lambda: kubectl(control_plane, "get", "machine", NEW["name"], "-o",
                             "jsonpath={.status.phase}").stdout == "installed", timeout=30,
             what="status.phase installed, written by the ServiceAccount")
    requests = its_requests(control_plane, pod)
    assert any(r.path.endswith(f"/machines/{NEW['name']}/status") and r.wrote and r.user == SA_USER
               for r in requests)


def test_nothing_it_asked_was_refused(control_plane, pod):
    """After the others: the start, the election, minting, the watches, status and Events all ran on
    the ServiceAccount's RBAC, and the API server refused none of it."""
    requests = its_requests(control_plane, pod)
    assert {r.user for r in requests} == {SA_USER}
    refused = [(r.verb, r.path, r.code) for r in requests if r.code in (401, 403)]
    assert not refused, refused
    assert "HTTP 403" not in pod.log.read_text() and "Forbidden" not in pod.log.read_text()
