"""A kube-apiserver stand-in that speaks the real protocol over real TLS, for what a real server
cannot be made to do on demand.

A real control plane (tests/k8s/, built from source) judges everything we send to Kubernetes and
every happy path: configs, RBAC, server-side apply, the gate reaching Ready, tokens, kubeadm-certs.
This stand-in is kept ONLY for faults and states a real server does not show when asked: /readyz
failing for a while before it answers, bursts of 503 on apply, a serving certificate from another CA
(the real one is made from ours, and only one control plane runs at a time), and Deployments that
become Available and an Argo CD Application that syncs (or never does) with no kubelet or Argo CD
controller running. It is not evidence that a real server accepts a request.

Its serving certificate is signed by the generated cluster CA (or any CA a test picks), and it
requires client certificates signed by that CA, as a kubeadm API server does. It answers what
`wait` uses: /readyz, /version, /api/v1/nodes (every listed node Ready), API discovery, server-side
apply (PATCH application/apply-patch+yaml with fieldManager) and GET of what was applied.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DISCOVERY = {
    "v1": [("namespaces", False, "Namespace"), ("configmaps", True, "ConfigMap"),
           ("serviceaccounts", True, "ServiceAccount"), ("services", True, "Service"), ("nodes", False, "Node"),
           ("nodes/status", False, "Node")],
    "apps/v1": [("daemonsets", True, "DaemonSet"), ("deployments", True, "Deployment")],
    "rbac.authorization.k8s.io/v1": [("clusterroles", False, "ClusterRole"),
                                     ("clusterrolebindings", False, "ClusterRoleBinding"),
                                     ("roles", True, "Role"), ("rolebindings", True, "RoleBinding")],
    "apiextensions.k8s.io/v1": [("customresourcedefinitions", False, "CustomResourceDefinition")],
}
CRD_SERVED = {"applications.argoproj.io": ("argoproj.io/v1alpha1", [("applications", True, "Application")])}


def serving_cert(ca_crt: Path, ca_key: Path, out: Path) -> tuple[Path, Path]:
    """A kube-apiserver-like serving certificate for 127.0.0.1, signed by the given CA."""
    ca = x509.load_pem_x509_certificate(ca_crt.read_bytes())
    signer = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(signer, hashes.SHA256()))
    crt_path, key_path = out / "apiserver.crt", out / "apiserver.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return crt_path, key_path


@dataclass
class StandInAPIServer:
    client_ca: Path  # client certificates must be signed by this CA
    cert: Path
    key: Path
    nodes: list[str]  # registered and Ready
    api_after: float = 0.0  # /readyz says 503 until then
    flaky_applies: int = 0  # answer the first N applies with 503
    deployments_after: float = 0.5  # a Deployment is Available this long after it is applied
    synced_after: float | None = 0.5  # the root Application syncs this long after it is applied
    applied_at: dict[str, float] = field(default_factory=dict)
    applied: list[dict] = field(default_factory=list)
    objects: dict[str, dict] = field(default_factory=dict)
    port: int = 0
    started: float = 0.0

    def __enter__(self) -> StandInAPIServer:
        ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self._stop = asyncio.Event()

        async def main():
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.cert, self.key)
            context.load_verify_locations(cafile=str(self.client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
            runner = web.AppRunner(self._app())
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            self.started = time.monotonic()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()

        self.loop.run_until_complete(main())

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/version", self._version)
        app.router.add_get("/api/v1/nodes", self._nodes)
        app.router.add_get("/api/v1", self._discovery)
        app.router.add_get("/apis/{group}/{version}", self._discovery)
        app.router.add_get("/apis/apps/v1/namespaces/{ns}/deployments", self._deployments)
        app.router.add_get("/{path:.*}", self._get)
        app.router.add_patch("/{path:.*}", self._apply)
        return app

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    async def _version(self, request):
        return web.json_response({"major": "1", "minor": "36", "gitVersion": "v1.36.3"})

    async def _readyz(self, request):
        if self._elapsed() < self.api_after:
            return web.Response(status=503, text="[-]etcd failed: not ready\nreadyz check failed\n")
        return web.Response(text="ok")

    async def _nodes(self, request):
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
        items = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"conditions": [ready]}}
                 for name in self.nodes]
        return web.json_response({"apiVersion": "v1", "kind": "NodeList", "items": items})

    def _served(self) -> dict:
        served = dict(DISCOVERY)
        for path in self.objects:
            name = path.rsplit("/", 1)[-1]
            if "/customresourcedefinitions/" in path and name in CRD_SERVED:
                gv, resources = CRD_SERVED[name]
                served[gv] = resources
        return served

    async def _discovery(self, request):
        gv = "v1" if request.path == "/api/v1" else f"{request.match_info['group']}/{request.match_info['version']}"
        served = self._served()
        if gv not in served:
            return web.json_response({"kind": "Status", "code": 404}, status=404)
        resources = [{"name": n, "namespaced": ns, "kind": k, "verbs": ["get", "patch"]} for n, ns, k in served[gv]]
        return web.json_response({"kind": "APIResourceList", "groupVersion": gv, "resources": resources})

    def _age(self, path: str) -> float:
        return time.monotonic() - self.applied_at[path]

    async def _deployments(self, request):
        prefix = f"/apis/apps/v1/namespaces/{request.match_info['ns']}/deployments/"
        items = []
        for path, body in self.objects.items():
            if path.startswith(prefix):
                ok = self._age(path) >= self.deployments_after
                items.append({**body, "status": {"conditions": [{"type": "Available", "status": str(ok)}]}})
        return web.json_response({"kind": "DeploymentList", "items": items})

    async def _get(self, request):
        body = self.objects.get(request.path)
        if body is None:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound"}, status=404)
        if body.get("kind") == "Application":
            synced = self.synced_after is not None and self._age(request.path) >= self.synced_after
            body = {**body, "status": {"sync": {"status": "Synced" if synced else "OutOfSync"},
                                       "health": {"status": "Healthy" if synced else "Progressing"}}}
        return web.json_response(body)

    async def _apply(self, request):
        if request.content_type != "application/apply-patch+yaml" or not request.query.get("fieldManager"):
            return web.json_response({"kind": "Status", "code": 415, "message": "server-side apply only"}, status=415)
        if self.flaky_applies > 0:
            self.flaky_applies -= 1
            return web.json_response({"kind": "Status", "code": 503}, status=503)
        body = json.loads(await request.read())
        new = request.path not in self.objects
        if new or self.objects[request.path] != body:
            self.applied_at[request.path] = time.monotonic()
        self.objects[request.path] = body
        self.applied.append({"path": request.path, "fieldManager": request.query["fieldManager"],
                             "force": request.query.get("force"), "kind": body.get("kind")})
        return web.json_response({**body, "metadata": {**body["metadata"], "uid": f"uid-{len(self.applied)}"}},
                                 status=201 if new else 200)
