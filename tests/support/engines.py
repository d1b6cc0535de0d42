"""Container engines for the image tests: a Docker engine of the tests' own (Debian's dockerd with its
own data root, exec root, socket and pidfile, no iptables and no bridge, so it changes nothing on
the host and touches no other dockerd), podman, and the base image neither can pull here.

The data root lives under build/ in this checkout, so a second run finds its layers and the image
build is warm; the exec root and socket are short paths under /run (a unix socket path has a length
limit), named per checkout so two checkouts on one machine never share an engine.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.processes import stop, wait_for


@dataclass(frozen=True)
class Engine:
    name: str  # "docker" or "podman"
    call: list[str]  # the command line that reaches it

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.call, *args], capture_output=True, text=True, **kw)


def _paths() -> tuple[Path, Path, Path]:
    tag = hashlib.sha1(str(REPO).encode()).hexdigest()[:8]
    run = Path("/run") / f"bn-dockerd-{tag}"
    return REPO / "build" / "dockerd", run, run.with_suffix(".sock")


@contextmanager
def private_dockerd(netns: str | None = None):
    """Yield an Engine for a dockerd started here, stopped (SIGTERM, then waited for) afterwards.

    `netns`: start it inside that named network namespace (nsenter, network only), so a container it
    runs with --net=host is on that namespace's network (the lab's appliance). The data root is the
    same either way: an image built by the host's dockerd (which can reach the package mirrors) is
    there for the namespaced one."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a Docker engine (dockerd)")
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("needs Debian's docker.io (dockerd and docker); .ci/run installs it")
    data, exec_root, sock = _paths()
    data.mkdir(parents=True, exist_ok=True)
    log = (data / "dockerd.log").open("ab")
    enter = ["nsenter", f"--net=/run/netns/{netns}"] if netns else []
    proc = subprocess.Popen(
        [*enter, "dockerd", "--data-root", str(data / "root"), "--exec-root", str(exec_root), "--host", f"unix://{sock}",
         "--pidfile", str(data / "dockerd.pid"), "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--exec-opt", "native.cgroupdriver=cgroupfs"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine("docker", ["docker", "--host", f"unix://{sock}"])
    try:
        wait_for(lambda: proc.poll() is not None or engine.run("info").returncode == 0, 60, "dockerd to answer")
        if proc.poll() is not None:
            pytest.fail(f"dockerd exited with {proc.returncode}: see {data / 'dockerd.log'}")
        yield engine
    finally:
        stop(proc)
        log.close()
        for mount in sorted(exec_root.glob("netns/*")):  # dockerd leaves its network namespace mounted
            subprocess.run(["umount", str(mount)], capture_output=True)
        shutil.rmtree(exec_root, ignore_errors=True)
        sock.unlink(missing_ok=True)


def podman() -> Engine:
    if shutil.which("podman") is None or subprocess.run(["podman", "info"], capture_output=True).returncode != 0:
        pytest.skip("needs podman (CI installs it)")
    return Engine("podman", ["podman"])


def import_rootfs(engine: Engine, tarball: Path, tag: str) -> None:
    with tarball.open("rb") as f:
        done = subprocess.run([*engine.call, "import", "-", tag], stdin=f, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{engine.name} import failed: {done.stderr}")


def debootstrap_tarball() -> Path:
    """A Debian bookworm root file system as a tarball, made once per checkout (no registry here)."""
    tarball = REPO / "build" / "debootstrap-bookworm.tar"
    if tarball.exists():
        return tarball
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        pytest.skip("needs the base image: root with debootstrap to make one (no registry here)")
    root = REPO / "build" / "debootstrap"
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), "http://deb.debian.org/debian"],
                   check=True, capture_output=True)
    partial = tarball.with_suffix(".partial")
    subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
    partial.rename(tarball)  # whole or absent: an interrupted run makes it again
    shutil.rmtree(root, ignore_errors=True)
    (REPO / "build" / "debootstrap-seconds.txt").write_text(f"{time.monotonic() - started:.0f}\n")
    return tarball
