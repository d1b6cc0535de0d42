"""A real Kubernetes control plane made from our own rendered files, for tests/k8s/.

The first controller's kubeadm configuration and CA set come out of its Ignition config, as the
node would receive them. Real kubeadm (built by scripts/k8s-binaries) runs `init phase certs all`,
`kubeconfig all`, `etcd local` and `control-plane all` into a root of its own (`--rootfs`), then the
static pods' commands run here as processes: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler, as kubeadm wrote them. kubeadm then runs `upload-config all`, `upload-certs`,
`mark-control-plane`, `bootstrap-token` and `addon coredns` against the live API server.

Everything runs in a network namespace of the test's own whose only interface, loopback, also holds
the node's address and the control-plane VIP, so the rendered configuration is used unchanged (its
addresses and well-known ports exist there, and no packet can leave it for the real network).
The test enters that namespace for its own API calls (`inside()`: this thread only, and what it
starts). The one thing changed is where files live: paths under /etc/kubernetes and /var/lib/etcd
in the static pods' commands point into the root. One thing is added: kube-apiserver writes an
audit log of the appliance's own requests (tests/support/audit.py), which decides nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.audit import Audit

READY_DEADLINE = 180.0  # cold start of etcd + kube-apiserver on a loaded 2-core machine
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
ROOT_PATHS = ("/etc/kubernetes", "/var/lib/etcd")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class ControlPlaneError(Exception):
    pass


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _ip(*args: str) -> None:
    run = subprocess.run(["ip", *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise ControlPlaneError(f"ip {' '.join(args)}: {run.stderr.strip()}")


@dataclass
class NetNS:
    """A network namespace whose only interface is loopback, holding the given addresses as well:
    they answer locally, and every other address is unreachable."""

    name: str
    addresses: list[str]

    def create(self) -> NetNS:
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            for address in self.addresses:
                _ip("-n", self.name, "addr", "add", f"{address}/32", "dev", "lo")
        except ControlPlaneError:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """This thread (and what it starts) in the namespace, then back where it was."""
        original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(original)
        finally:
            os.close(original)
            os.close(target)


@dataclass
class ControlPlane:
    bin: Path  # scripts/k8s-binaries' directory
    root: Path  # kubeadm's --rootfs: etc/kubernetes, var/lib/etcd live under it
    config: str  # the rendered kubeadm configuration (InitConfiguration + ClusterConfiguration)
    node_files: dict[str, bytes]  # path under /etc/kubernetes -> bytes (our CA set, kube-vip manifest)
    netns: NetNS
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def audit(self) -> Audit:
        """The appliance's requests to this API server, as the server logged them."""
        return Audit(self.root / "logs" / "audit.jsonl")

    @property
    def _init(self) -> dict:
        return next(d for d in yaml.safe_load_all(self.config) if d and d["kind"] == "InitConfiguration")

    @property
    def advertise_address(self) -> str:
        return self._init["localAPIEndpoint"]["advertiseAddress"]

    @property
    def server(self) -> str:
        """The control-plane endpoint, as rendered (reachable inside the namespace)."""
        cluster = next(d for d in yaml.safe_load_all(self.config) if d and d["kind"] == "ClusterConfiguration")
        return f"https://{cluster['controlPlaneEndpoint']}"

    @property
    def etc(self) -> Path:
        return self.root / "etc" / "kubernetes"

    @property
    def admin_conf(self) -> Path:
        return self.etc / "admin.conf"

    @property
    def super_admin_conf(self) -> Path:
        """system:masters: for what stands in for kubelets, which must not wait for RBAC to settle
        (admin.conf's group is bound during upload-config, and the authorizer learns it a moment later)."""
        return self.etc / "super-admin.conf"

    def inside(self):
        return self.netns.inside()

    def kubeadm(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / "kubeadm"), *args, "--rootfs", str(self.root)]
        with self.inside():
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and run.returncode != 0:
            raise ControlPlaneError(f"kubeadm {' '.join(args)} failed ({run.returncode}):\n{run.stderr[-4000:]}")
        return run

    def init_phase(self, *phase: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return self.kubeadm("init", "phase", *phase, "--config", "/kubeadm.yaml", *extra)

    # -- bring-up -------------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.root / "kubeadm.yaml").write_text(self.config)
        for rel, data in self.node_files.items():
            path = self.etc / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            path.chmod(0o600 if rel.endswith(".key") else 0o644)
        for phase in (("certs", "all"), ("kubeconfig", "all"), ("etcd", "local"), ("control-plane", "all")):
            self.init_phase(*phase)
        (self.root / "logs").mkdir(exist_ok=True)
        with self.inside():
            for name in COMPONENTS:
                log = (self.root / "logs" / f"{name}.log").open("wb")
                self.processes[name] = subprocess.Popen(self.command(name), stdout=log, stderr=subprocess.STDOUT,
                                                        stdin=subprocess.DEVNULL, start_new_session=True)
                log.close()
            self.wait_ready()
        return self

    def command(self, name: str) -> list[str]:
        """The static pod's command as kubeadm wrote it, with its files in the root (and, for
        kube-apiserver, the audit log's flags)."""
        manifest = yaml.safe_load((self.etc / "manifests" / f"{name}.yaml").read_text())
        command = list(manifest["spec"]["containers"][0]["command"])
        out = [str(self.bin / command[0])]
        for arg in command[1:]:
            for path in ROOT_PATHS:
                arg = arg.replace(path, f"{self.root}{path}")
            out.append(arg)
        if name == "kube-apiserver":
            out += self.audit.flags(self.root / "audit-policy.yaml")
        return out

    def get(self, path: str) -> tuple[int, bytes]:
        """GET on the node's own API server address (call inside the namespace)."""
        context = ssl.create_default_context(cafile=str(self.etc / "pki" / "ca.crt"))
        context.load_cert_chain(str(self.etc / "pki" / "apiserver-kubelet-client.crt"),
                                str(self.etc / "pki" / "apiserver-kubelet-client.key"))
        port = self._init["localAPIEndpoint"].get("bindPort", 6443)
        conn = http.client.HTTPSConnection(self.advertise_address, port, context=context, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE
        last = "no answer yet"
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            try:
                status, body = self.get("/readyz")
                if status == 200:
                    return
                last = f"HTTP {status}: {body[-300:].decode(errors='replace')}"
            except (OSError, http.client.HTTPException) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise ControlPlaneError(f"kube-apiserver not ready within {READY_DEADLINE:.0f} s: {last}\n"
                                f"{self.log_tail('kube-apiserver')}")

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.root / "logs" / f"{name}.log"
        return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else "(no log)"

    def stop(self) -> None:
        stop_groups(self.processes, reversed(COMPONENTS))

    # -- the rest of `kubeadm init`, against the live API server ------------------------------

    def finish_init(self, node_name: str) -> None:
        """upload-config, upload-certs (our certificate key), mark-control-plane, bootstrap-token,
        addon coredns. The Node object mark-control-plane patches is created before it, as no kubelet
        runs (after upload-config: kubeadm binds admin.conf's group when it first connects)."""
        self.init_phase("upload-config", "all")
        self.init_phase("upload-certs", extra=("--upload-certs",))
        self.create_node(node_name)
        self.init_phase("mark-control-plane")
        self.init_phase("bootstrap-token")
        self.init_phase("addon", "coredns")
        self.wait_for_service_accounts()

    def wait_for_service_accounts(self) -> None:
        """The controller manager makes each namespace's `default` ServiceAccount a moment after
        start; until then the API server refuses every Pod there (even a dry run)."""
        deadline = time.monotonic() + READY_DEADLINE
        missing = ["kube-system", "default"]
        while missing and time.monotonic() < deadline:
            missing = [ns for ns in missing
                       if self.kubectl("get", "-n", ns, "serviceaccount", "default", check=False).returncode != 0]
            if missing:
                time.sleep(0.5)
        if missing:
            raise ControlPlaneError(f"no default ServiceAccount in {', '.join(missing)} within {READY_DEADLINE:.0f} s:\n"
                                    f"{self.log_tail('kube-controller-manager')}")

    def kubectl(self, *args: str, kubeconfig: Path | None = None, stdin: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / "kubectl"), "--kubeconfig", str(kubeconfig or self.admin_conf), *args]
        with self.inside():
            run = subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=120)
        if check and run.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
        return run

    def create_node(self, name: str, *, ready: bool = False) -> None:
        """A Node object as a kubelet would register it (no kubelet runs here); Ready when asked.
        One that exists already is kept (the tier's tests share this control plane)."""
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}}}
        run = self.kubectl("create", "-f", "-", stdin=yaml.safe_dump(node), kubeconfig=self.super_admin_conf,
                           check=False)
        if run.returncode != 0 and "AlreadyExists" not in run.stderr:
            raise ControlPlaneError(f"kubectl create node {name} failed ({run.returncode}):\n{run.stderr[-3000:]}")
        if ready:
            self.set_ready(name, True)

    def register(self, states: dict[str, bool | None]) -> None:
        """Nodes as kubelets would have left them: True Ready, False registered and NotReady for want
        of a pod network, None not registered (its Node deleted if there was one)."""
        for name, ready in states.items():
            if ready is None:
                self.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false",
                             kubeconfig=self.super_admin_conf)
                continue
            self.create_node(name)
            self.set_ready(name, ready, "kubelet is posting ready status" if ready else
                           "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady")

    def set_ready(self, name: str, ready: bool, message: str = "kubelet is posting ready status") -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status = {"status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                             "reason": "KubeletReady" if ready else "KubeletNotReady",
                                             "message": message, "lastHeartbeatTime": now,
                                             "lastTransitionTime": now}]}}
        self.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", yaml.safe_dump(status),
                     kubeconfig=self.super_admin_conf)


def stop_groups(processes: dict[str, subprocess.Popen], order) -> None:
    """SIGTERM each named process's group (each was started in a session of its own), in `order`;
    SIGKILL what is still there 20 s later."""
    for name in order:
        proc = processes.get(name)
        if proc is None or proc.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def addresses(cluster) -> list[str]:
    """The first controller's address, and the control-plane VIP when there is one (kube-vip's,
    which the first controller holds until others join)."""
    vip = [str(cluster.control_plane_vip)] if cluster.control_plane_vip is not None else []
    return [str(cluster.bootstrap_node.ip), *vip]


def node_files(ignition: dict, files_of) -> tuple[str, dict[str, bytes]]:
    """A controller's kubeadm configuration and what its kubeadm.sh copies into /etc/kubernetes."""
    files = files_of(ignition)
    prefix = "/opt/bootstrap-node/kubernetes/"
    placed = {path[len(prefix):]: data for path, data in files.items() if path.startswith(prefix)}
    return files["/etc/kubernetes/kubeadm.yaml"].decode(), placed
