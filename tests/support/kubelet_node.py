"""Real nodes for the real control plane (tests/support/control_plane.py): kubelet (built by
scripts/k8s-binaries) with Debian's containerd, runc and CNI plugins (containernetworking-plugins).

A worker is a network namespace of its own, joined to the control plane's by a bridge there, holding
the node's address from cluster.yaml. Real `kubeadm join` runs with the node's rendered join
configuration, unchanged (discovery through the bootstrap token and CA pin it carries, then TLS
bootstrap: the kubelet's CSR approved by the real controller-manager through kubeadm's RBAC). The
controller the control plane was made from gets its kubelet through `kubeadm init phase kubelet-start`.
Each node's containerd runs with the node's rendered /etc/containerd/config.toml.

What differs from a Flatcar node, because this host is not one (each change says why, below):
- files live under the node's root: kubeadm runs with `--rootfs` (a chroot), containerd and the
  kubelet get their paths by flag and configuration;
- no systemd: kubeadm cannot start the kubelet (it says so and waits), so the test starts it with the
  configuration and flags kubeadm wrote; the cgroup driver is cgroupfs, for containerd too;
- this host mounts cgroup v1, which kubelet 1.35+ refuses unless `failCgroupV1: false`; several
  kubelets share its cgroup tree, so none makes the per-QoS cgroups (`cgroupsPerQOS: false`);
- the pod network is a bridge/host-local CNI configuration of the node's own range (what makes the
  runtime report NetworkReady); no pod runs: no image can be pulled here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.control_plane import NetNS, stop_groups

CNI_BIN = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
JOIN_DEADLINE = 240.0  # kubeadm's own wait for the kubelet is 4 min
INOTIFY_NEEDED = 12  # containerd and each kubelet open several inotify instances
HOST_PATHS = ("/etc/kubernetes", "/var/lib/kubelet")
# The kubelet makes these whatever it is told (its device-plugin socket's directory is fixed): they
# are removed after the test when they were not there before it.
KUBELET_LEFTOVERS = (Path("/var/lib/kubelet"), Path("/var/log/containers"))
BRIDGE = "bnk8s"  # in the control plane's namespace: the nodes' segment
GATEWAY = "10.0.0.250"  # the bridge's address there (no node or VIP of the example has it)


def host_problem() -> str | None:
    """Why this host cannot run a kubelet node (a package missing, or a limit), or None."""
    for tool, package in (("containerd", "containerd"), ("runc", "runc")):
        if shutil.which(tool) is None:
            return f"needs {tool} (Debian package {package})"
    missing = [p for p in CNI_PLUGINS if not (CNI_BIN / p).is_file()]
    if missing:
        return f"needs the CNI plugins {', '.join(missing)} in {CNI_BIN} (Debian package containernetworking-plugins)"
    if " - cgroup" not in Path("/proc/self/mountinfo").read_text():
        return "no cgroup filesystem is mounted here: the kubelet needs one"
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    used = inotify_instances()
    if limit - used < INOTIFY_NEEDED:
        return (f"fs.inotify.max_user_instances is {limit} and processes of this user hold {used}: "
                f"containerd and the kubelet need about {INOTIFY_NEEDED} more")
    return None


def inotify_instances() -> int:
    uid, count = os.getuid(), 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if proc.stat().st_uid != uid:
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    count += os.readlink(fd) == "anon_inode:inotify"
    return count


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` in this mount namespace."""
    prefix = str(root).rstrip("/")
    points = [line.split()[4].replace("\\040", " ") for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


def containerd_config(rendered: str, root: Path, sockets: Path) -> str:
    """The node's rendered containerd configuration with its state under `root`, the CNI plugins
    where Debian puts them, and cgroupfs (no systemd here)."""
    text = rendered.replace("SystemdCgroup = true", "SystemdCgroup = false")
    if "SystemdCgroup = false" not in text:
        raise ValueError("the rendered containerd configuration no longer sets SystemdCgroup")
    head, _, rest = text.partition("\n")  # `version = 2` stays first; top-level keys precede tables
    return (f'{head}\nroot = "{root}/var/lib/containerd"\nstate = "{root}/run/containerd"\n{rest}\n'
            f'[grpc]\n  address = "{sockets}/containerd.sock"\n'
            f'[ttrpc]\n  address = "{sockets}/containerd.sock.ttrpc"\n'
            f'[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "{CNI_BIN}"\n'
            f'  conf_dir = "{root}/etc/cni/net.d"\n')


def cni_config(subnet: str) -> str:
    return json.dumps({"cniVersion": "0.4.0", "name": "bootstrap-node-test", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]})


def wire(plane: NetNS, node: NetNS, address: str, index: int) -> None:
    """`node` on the nodes' segment: a veth pair from its namespace to a bridge in the control
    plane's, where the control plane's addresses answer (the same /24 as cluster.yaml's)."""
    def ip(*args: str) -> None:
        run = subprocess.run(["ip", *args], capture_output=True, text=True)
        if run.returncode != 0:
            raise AssertionError(f"ip {' '.join(args)}: {run.stderr.strip()}")
    if subprocess.run(["ip", "-n", plane.name, "link", "show", BRIDGE], capture_output=True).returncode != 0:
        ip("-n", plane.name, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", plane.name, "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
        ip("-n", plane.name, "link", "set", BRIDGE, "up")
    outer, inner = f"bnk{os.getpid() % 100000}n{index}", f"bnk{os.getpid() % 100000}p{index}"
    ip("link", "add", outer, "type", "veth", "peer", "name", inner)
    ip("link", "set", outer, "netns", plane.name)
    ip("link", "set", inner, "netns", node.name)
    ip("-n", plane.name, "link", "set", outer, "master", BRIDGE, "up")
    ip("-n", node.name, "addr", "add", f"{address}/24", "dev", inner)
    ip("-n", node.name, "link", "set", inner, "up")
    ip("-n", node.name, "route", "add", "default", "via", GATEWAY)


@dataclass
class KubeletNode:
    name: str
    root: Path  # /etc/kubernetes, /var/lib/kubelet, containerd's state: under it
    bin: Path  # scripts/k8s-binaries' directory
    netns: NetNS
    pod_subnet: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def sockets(self) -> Path:
        """containerd's sockets: a unix socket's path must stay under 104 bytes, which a test's
        temporary directory can exceed."""
        return Path("/run") / f"bnk-{os.getpid()}-{self.name}"

    @property
    def socket(self) -> Path:
        return self.sockets / "containerd.sock"

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.log(name)
        return path.read_bytes()[-size:].decode(errors="replace") if path.exists() else "(no log)"

    def _start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with self.netns.inside(), self.log(name).open("wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.processes[name] = proc
        return proc

    def start_runtime(self, rendered_containerd: str) -> None:
        for sub in ("etc/cni/net.d", "run/containerd", "var/lib/containerd"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "etc" / "cni" / "net.d" / "10-bridge.conflist").write_text(cni_config(self.pod_subnet))
        self.sockets.mkdir(mode=0o700, exist_ok=True)
        config = self.root / "containerd.toml"
        config.write_text(containerd_config(rendered_containerd, self.root, self.sockets))
        self._start("containerd", ["containerd", "--config", str(config)])
        self._poll(self.socket.exists, "containerd's socket", "containerd", 60)

    def join(self, join_config: str) -> None:
        """`kubeadm join` with the rendered configuration, in the node's root; the kubelet starts
        once kubeadm has written its configuration (kubeadm waits for it to bootstrap)."""
        (self.root / "kubeadm.yaml").write_text(join_config)
        # Inside kubeadm's chroot the kubelet's certificate paths (absolute, under the root) must
        # resolve too: the root's own path there leads back to its top.
        inner = self.root / str(self.root).lstrip("/")
        inner.parent.mkdir(parents=True, exist_ok=True)
        if not inner.is_symlink():
            inner.symlink_to("/")
        # Preflight would judge this host (swap, systemd, ports of other tests), not the node.
        kubeadm = self._start("kubeadm-join", [str(self.bin / "kubeadm"), "join", "--config", "/kubeadm.yaml",
                                               "--rootfs", str(self.root), "--ignore-preflight-errors=all"])
        flags = self.root / "var" / "lib" / "kubelet" / "kubeadm-flags.env"  # kubeadm writes it last
        self._poll(lambda: flags.exists() or kubeadm.poll() is not None, "kubeadm to write the kubelet's files",
                   "kubeadm-join", JOIN_DEADLINE)
        if kubeadm.poll() is not None:
            raise AssertionError(f"kubeadm join exited with {kubeadm.returncode}:\n{self.log_tail('kubeadm-join')}")
        self.start_kubelet(bootstrap=True)

    def wait_joined(self) -> int:
        """kubeadm join's exit code; fails at once, with its log, when containerd or the kubelet die."""
        join = self.processes["kubeadm-join"]
        self._poll(lambda: join.poll() is not None, "end of kubeadm join", "kubeadm-join", JOIN_DEADLINE)
        return join.returncode

    def start_kubelet(self, bootstrap: bool) -> None:
        """The kubelet with the configuration and flags kubeadm wrote, its paths under the root."""
        kubelet_dir = self.root / "var" / "lib" / "kubelet"
        config = yaml.safe_load(self._rooted((kubelet_dir / "config.yaml").read_text()))
        config.update({
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",  # no systemd here; containerd is told the same
            "failCgroupV1": False,  # this host mounts cgroup v1 (Flatcar: v2)
            "failSwapOn": False,
            "cgroupsPerQOS": False, "enforceNodeAllocatable": [],  # several kubelets share one cgroup tree
            "podLogsDir": str(self.root / "var" / "log" / "pods"),
        })
        config.pop("staticPodPath", None)  # the control plane runs as processes, not static pods
        (self.root / "kubelet-config.yaml").write_text(yaml.safe_dump(config))
        env = (kubelet_dir / "kubeadm-flags.env").read_text()
        flags = re.search(r'KUBELET_KUBEADM_ARGS="([^"]*)"', env).group(1).split()
        etc = self.root / "etc" / "kubernetes"
        bootstrapping = [f"--bootstrap-kubeconfig={etc / 'bootstrap-kubelet.conf'}"] if bootstrap else []
        self._start("kubelet", [str(self.bin / "kubelet"), f"--config={self.root / 'kubelet-config.yaml'}",
                                f"--kubeconfig={etc / 'kubelet.conf'}", *bootstrapping,
                                f"--root-dir={kubelet_dir}", f"--cert-dir={kubelet_dir / 'pki'}", *flags])

    def _rooted(self, text: str) -> str:
        for path in HOST_PATHS:
            text = text.replace(path, f"{self.root}{path}")
        return text

    def _poll(self, done, what: str, log: str, deadline: float) -> None:
        end = time.monotonic() + deadline
        while not done():
            for name, proc in self.processes.items():
                if proc.poll() is not None and name != "kubeadm-join":
                    raise AssertionError(f"{self.name}: {name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            if time.monotonic() > end:
                raise AssertionError(f"{self.name}: no {what} within {deadline:.0f} s:\n{self.log_tail(log)}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Its processes, then what the kubelet mounted under the root (its root directory, bound
        onto itself, and the volumes of the pods scheduled there), deepest first."""
        stop_groups(self.processes, ("kubeadm-join", "kubelet", "containerd"))
        shutil.rmtree(self.sockets, ignore_errors=True)
        for mount in sorted(mounts_under(self.root), key=len, reverse=True):
            if subprocess.run(["umount", mount], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", mount], capture_output=True)  # busy: detach it
