"""The QEMU lab (scripts/lab) with its appliance in cluster mode, against the k8s tier's real
control plane (tests/support/control_plane.py).

- The rack comes up without an appliance of its own (`Lab.up(appliance=False)`): the bridge, the
  site's DHCP server, the appliance's namespace `<prefix>appl` holding 10.99.0.2 on the bridge.
- The control plane's namespace is joined to the lab's bridge by a veth pair and holds `API_ON_LAN`
  there; a replica's namespace reaches the API server's own address (the one its certificate names)
  through a /32 route via `API_ON_LAN`. Joining the bridge, rather than a veth per replica, means a
  second replica needs only its namespace on the bridge and that one route.
- `pivot` runs on an appliance's output directory for the lab's cluster.yaml, generated into a
  scratch directory that is deleted as soon as the pivot is done: nothing of it is left for serve.
- Each replica is `serve --from-cluster` in a namespace on the bridge, with an absent `--output` of
  its own (in a pod, the Deployment's emptyDir): there it writes the tree it renders from the API,
  its event log and its run files. It acts as the appliance's ServiceAccount, with a token the API
  server issues for it (TokenRequest) in an out-of-cluster kubeconfig, as the pod would. The
  Deployment's pods themselves cannot run: no kubelet runs and no image can be pulled here.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from app.pivot import rbac
from tests.support.control_plane import ControlPlane, stop_groups
from tests.support.paths import REPO

sys.path.insert(0, str(REPO / "scripts" / "lab"))
import lab as lab_module  # noqa: E402

API_ON_LAN = "10.99.0.9"  # the control plane's namespace on the lab's bridge (outside the site's DHCP range)
IMAGE = "registry.example/bootstrap-node:lab"  # named in the Deployment, never pulled (no kubelet runs)
TOKEN_LIFETIME = "1h"
HTTP_PORT = 8080  # the lab's bootstrap.http_port
INTERFACE = "appl0"  # the lab's bootstrap.interface


class ClusterLabError(Exception):
    pass


def sh(*args: str) -> str:
    run = subprocess.run(list(args), capture_output=True, text=True)
    if run.returncode != 0:
        raise ClusterLabError(f"{' '.join(args)}: {run.stderr.strip()}")
    return run.stdout


@dataclass
class Replica:
    """One `serve --from-cluster` process and the --output it renders into."""

    name: str
    netns: str
    output: Path
    log: Path
    process: subprocess.Popen

    def events(self) -> list[dict]:
        return lab_module.events_in(self.output)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_bytes()[-size:].decode(errors="replace") if self.log.exists() else "(no log)"


class ClusterLab:
    """`lab` (a scripts/lab Lab, not yet up) in cluster mode against `plane`, state in `namespace`."""

    def __init__(self, lab, plane: ControlPlane, namespace: str):
        self.lab, self.plane, self.namespace = lab, plane, namespace
        self.replicas: dict[str, Replica] = {}
        self.namespaces: list[str] = []  # made here, beside the lab's own
        self.pivot_output = lab.dir / "pivot-output"  # the appliance's run, deleted after the pivot
        self._joined = False

    # -- up and down -------------------------------------------------------------------------------
    def up(self) -> ClusterLab:
        self.lab.up(appliance=False)
        self._join()
        return self

    def down(self) -> None:
        stop_groups({name: r.process for name, r in self.replicas.items()}, list(self.replicas))
        if self._joined:
            subprocess.run(["ip", "-n", self.plane.netns.name, "link", "del", "lab0"], capture_output=True)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.lab.down()

    def _join(self) -> None:
        """A veth from the lab's bridge into the control plane's namespace, `API_ON_LAN` on its end."""
        lan, cp = self.lab.lan, self.plane.netns.name
        sh("ip", "-n", lan, "link", "add", "k8s-br", "type", "veth", "peer", "name", "lab0", "netns", cp)
        self._joined = True
        sh("ip", "-n", lan, "link", "set", "k8s-br", "master", "br0", "up")
        sh("ip", "-n", cp, "addr", "add", f"{API_ON_LAN}/24", "dev", "lab0")
        sh("ip", "-n", cp, "link", "set", "lab0", "up")

    def route_to_api(self, netns: str) -> None:
        sh("ip", "-n", netns, "route", "add", f"{self.plane.advertise_address}/32", "via", API_ON_LAN)

    def replica_namespace(self, name: str, address: str) -> str:
        """A namespace of its own on the lab's bridge, routed to the API server: where a replica of several
        runs. Its interface is the lab's bootstrap.interface (dnsmasq binds that name) with `address`/24;
        the leader adds bootstrap.ip to it."""
        ns = f"{self.lab.prefix}{name}"
        sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.lab.lan, "link", "add", f"{name}-br", "type", "veth", "peer", "name", INTERFACE,
           "netns", ns)
        sh("ip", "-n", self.lab.lan, "link", "set", f"{name}-br", "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", INTERFACE)
        sh("ip", "-n", ns, "link", "set", INTERFACE, "up")
        self.route_to_api(ns)
        return ns

    # -- the pivot ---------------------------------------------------------------------------------
    def pivot(self) -> str:
        """generate the lab's cluster.yaml into a scratch directory, pivot it into the API server as a
        cluster admin, delete the directory. Returns pivot's output."""
        common = [sys.executable, "-m", "app", "--config", str(self.lab.config), "--output", str(self.pivot_output),
                  "--templates", "/nonexistent"]
        generate = subprocess.run([*common, "generate", "--assets", str(self.lab.assets), "--ipxe-dir",
                                   "/usr/lib/ipxe"], cwd=REPO, capture_output=True, text=True)
        if generate.returncode != 0:
            raise ClusterLabError(f"generate failed:\n{generate.stderr[-3000:]}")
        try:
            with self.plane.inside():
                run = subprocess.run([*common, "pivot", "--kubeconfig", str(self.plane.admin_conf), "--image", IMAGE,
                                      "--namespace", self.namespace, "--timeout", "60"],
                                     cwd=REPO, capture_output=True, text=True)
            if run.returncode != 0:
                raise ClusterLabError(f"pivot failed ({run.returncode}):\n{run.stdout[-2000:]}{run.stderr[-3000:]}")
            return run.stdout
        finally:
            shutil.rmtree(self.pivot_output)

    def service_account_kubeconfig(self) -> Path:
        """What the pod's in-cluster config would hold: the appliance ServiceAccount's token (TokenRequest,
        real kubectl), the cluster CA, the API server's own address."""
        token = self.plane.kubectl("create", "token", rbac.SERVICE_ACCOUNT, "-n", self.namespace, "--duration",
                                   TOKEN_LIFETIME).stdout.strip()
        ca = base64.b64encode((self.plane.etc / "pki" / "ca.crt").read_bytes()).decode()
        server = f"https://{self.plane.advertise_address}:6443"
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "pod",
                  "clusters": [{"name": "c", "cluster": {"server": server, "certificate-authority-data": ca}}],
                  "users": [{"name": "sa", "user": {"token": token}}],
                  "contexts": [{"name": "pod", "context": {"cluster": "c", "user": "sa"}}]}
        path = self.lab.dir / "serviceaccount.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    # -- replicas ----------------------------------------------------------------------------------
    def start_replica(self, name: str, netns: str, kubeconfig: Path, *extra: str) -> Replica:
        """`serve --from-cluster` in `netns` (on the bridge, routed to the API) with a new --output;
        `extra`: more of serve's options (a second replica's `--leader-elect …`)."""
        output, log = self.lab.dir / f"replica-{name}", self.lab.dir / f"replica-{name}.log"
        if output.exists():
            raise ClusterLabError(f"{output} exists: each replica starts from an absent --output")
        # --config names no file: the cluster.yaml serve uses is the one it exports from the API. --listen
        # as the Deployment passes it (without it, serve reads --config for bootstrap.ip and http_port).
        args = [sys.executable, "-m", "app", "--config", str(self.lab.dir / "absent.yaml"), "--output", str(output),
                "serve", "--from-cluster", "--kubeconfig", str(kubeconfig), "--cluster-namespace", self.namespace,
                "--listen", f"0.0.0.0:{HTTP_PORT}", "--assets", str(self.lab.assets), "--access-log", *extra]
        with log.open("ab") as sink:
            process = subprocess.Popen(["ip", "netns", "exec", netns, *args], cwd=REPO, stdin=subprocess.DEVNULL,
                                       stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        self.replicas[name] = replica = Replica(name, netns, output, log, process)
        return replica

    def ready(self, replica: Replica) -> bool:
        """Its dnsmasq answers (serve records that once it is up); ClusterLabError once it has exited."""
        if not replica.alive():
            raise ClusterLabError(f"serve {replica.name} exited with {replica.process.returncode}:\n"
                                  f"{replica.log_tail()}")
        return any(e.get("kind") == "dnsmasq-ready" for e in replica.events())


@contextlib.contextmanager
def cluster_lab(plane: ControlPlane, namespace: str, tag: str) -> Iterator[ClusterLab]:
    """A ClusterLab up in a directory of its own (namespaces `<tag><pid>…`), taken down afterwards;
    skipped where the lab cannot run."""
    if os.geteuid() != 0:
        pytest.skip("the QEMU lab needs root (network namespaces, taps); CI runs it as root")
    if gone := lab_module.missing_tools():
        pytest.skip("the QEMU lab needs: " + ", ".join(gone))
    directory = Path(tempfile.mkdtemp(prefix=f"bn-{tag}-", dir="/tmp"))
    directory.chmod(0o755)  # dnsmasq (as nobody) reads a replica's tftp/
    cl = ClusterLab(lab_module.Lab(directory=directory, prefix=f"{tag}{os.getpid() % 10000}"), plane, namespace)
    try:
        yield cl.up()
    finally:
        cl.down()
        shutil.rmtree(directory, ignore_errors=True)


def machine_yaml(namespace: str, name: str, mac: str, address: str) -> str:
    """A worker's Machine as a user writes it for the lab (its disk by kernel name, as the lab's nodes)."""
    return yaml.safe_dump({"apiVersion": "bootstrap-node.io/v1alpha1", "kind": "Machine",
                           "metadata": {"name": name, "namespace": namespace},
                           "spec": {"mac": mac, "role": "worker", "addresses": [address], "reinstall": 0,
                                    "installDisk": "/dev/vda", "allowKernelDiskName": True}})
