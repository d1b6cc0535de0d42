"""The headline command end to end, with real Docker: the image built by a dockerd of the tests' own,
then `docker run --net=host <caps> -v cluster.yaml:/config/cluster.yaml:ro -v output:/output
-v assets:/assets:ro IMAGE init --yes` in the lab's appliance namespace, and the lab's QEMU machines
(BIOS, UEFI PXE, UEFI HTTP Boot) PXE-booting from that container to `installed`.

How the container gets the lab's network: `--net=host` puts a container on its dockerd's network, so
the dockerd for the run is started inside the lab's appliance namespace (`nsenter --net`), on the
same data root as the host-network dockerd that built the image (which needs the package mirrors).
`--privileged` is what a normal host uses; this sandbox has no CAP_SYS_RESOURCE, so the run has
`--cap-add ALL --cap-drop SYS_RESOURCE --security-opt seccomp=unconfined` instead.

How far it goes: every node `installed` (the stand-in Flatcar installs and powers off; it runs no
Kubernetes, so init's wait for the API could never succeed). Meanwhile the same container is asked
what else the built image promises: chronyd answers a real NTP query from the site's namespace
(bootstrap.time_server: true), and kured's manifest is among the add-ons init's wait applies. Then
`teardown` in the container stops init, which exits 130 (interrupted; serving stopped).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.appliance_image import TAG, build_image
from tests.support.engines import Engine, private_dockerd
from tests.support.paths import REPO
from tests.support.processes import wait_for

sys.path.insert(0, str(REPO / "scripts" / "lab"))
import lab as lab_module  # noqa: E402

NODES = [m for m in lab_module.MACHINES if m.name != "stranger"]
CAPS = ["--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--security-opt", "seccomp=unconfined"]
INSTALL_TIMEOUT = 900  # three TCG machines on a shared 2-core host


def config_with_time_server(path: Path) -> Path:
    text = (REPO / "scripts" / "lab" / "cluster.yaml").read_text()
    path.write_text(text.replace("  http_port: 8080\n", "  http_port: 8080\n  time_server: true\n", 1))
    assert "time_server: true" in path.read_text()
    return path


@pytest.fixture(scope="module")
def rack():
    if os.geteuid() != 0:
        pytest.skip("the QEMU lab needs root (network namespaces, taps); CI runs it as root")
    if gone := lab_module.missing_tools() + [tool for tool in ("nsenter", "chronyd") if shutil.which(tool) is None]:
        pytest.skip("the Docker lab needs: " + ", ".join(gone))
    with private_dockerd() as docker:  # the host's network: the build reaches the package mirrors
        build_image(docker)
    directory = Path(tempfile.mkdtemp(prefix="bn-e2e-docker-", dir="/tmp"))
    directory.chmod(0o755)  # dnsmasq (as nobody, in the container) must reach output/tftp
    the_lab = lab_module.Lab(directory=directory, prefix=f"bnd{os.getpid() % 10000}")
    try:
        the_lab.up(appliance=False)
        the_lab.output.mkdir(exist_ok=True)
        the_lab.output.chmod(0o755)
        with private_dockerd(netns=the_lab.appl) as docker:
            yield the_lab, docker, config_with_time_server(directory / "cluster.yaml")
    finally:
        the_lab.down()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def init(rack):
    """`docker run … init` in the lab, the nodes powered on once it serves, every node installed."""
    the_lab, docker, config = rack
    started = docker.run("run", "-d", "--name", f"bn-init-{os.getpid()}", "--net=host", *CAPS,
                         "-v", f"{config}:/config/cluster.yaml:ro", "-v", f"{the_lab.output}:/output",
                         "-v", f"{the_lab.assets}:/assets:ro", TAG, "init", "--yes", "--api-timeout", "3600")
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        wait_for(lambda: any(e["kind"] == "dnsmasq-ready" for e in the_lab.events()) or not running(docker, container),
                 120, "init's serve (dnsmasq ready) in the container", interval=1)
        assert running(docker, container), logs(docker, container)
        for machine in NODES:
            the_lab.boot(machine)
        wait_for(lambda: all(installed(the_lab, m) for m in NODES) or not running(docker, container),
                 INSTALL_TIMEOUT, "every node to report installed", interval=1)  # each look runs `docker inspect`
        assert running(docker, container), logs(docker, container)
        yield the_lab, docker, container
    finally:
        for machine in NODES:
            the_lab.power_off(machine)
        docker.run("rm", "-f", container)


def running(docker: Engine, container: str) -> bool:
    return docker.run("inspect", "-f", "{{.State.Running}}", container).stdout.strip() == "true"


def logs(docker: Engine, container: str) -> str:
    done = docker.run("logs", container)
    return done.stdout + done.stderr


def installed(the_lab, machine) -> bool:
    return any(e["kind"] == "installed" and e.get("mac") == machine.mac for e in the_lab.events())


@pytest.mark.parametrize("name", [m.name for m in NODES])
def test_each_node_installs_from_the_container(init, name):
    the_lab, _, _ = init
    machine = next(m for m in NODES if m.name == name)
    events = [e for e in the_lab.events() if e.get("mac") == machine.mac]
    kinds = [e["kind"] for e in events]
    assert any(e["kind"] == "ipxe" and e["detail"]["profile"] == f"{name}-install" for e in events), kinds
    downloads = {e["detail"]["file"].rsplit("/", 1)[1] for e in events if e["kind"] == "boot-asset"}
    assert downloads >= {"flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz"}
    assert any(e["kind"] == "install-ignition" and e["detail"]["group"] == f"{name}-install" for e in events)
    assert [k for k in kinds if k in ("installing", "installed")][-1] == "installed"
    # The served tree is init's own generate, inside the container (its paths, not the host's).
    assert f"ignition.config.url=http://10.99.0.2:8080/ignition?mac={machine.mac.replace(':', '-')}" in \
        the_lab.serial(machine)


def test_chronyd_in_the_container_answers_ntp_on_the_lab_network(init):
    """A real NTP exchange from the site's namespace (another host on the LAN) to the appliance."""
    the_lab, docker, container = init
    assert any(e["kind"] == "chronyd-started" for e in the_lab.events()), logs(docker, container)
    query = subprocess.run(["ip", "netns", "exec", the_lab.site, "chronyd", "-Q", "-t", "20", "-f", "/dev/null",
                            "server 10.99.0.2 iburst maxsamples 1"], capture_output=True, text=True, timeout=60)
    assert query.returncode == 0, query.stdout + query.stderr  # chronyd -Q fails when no server answered


def test_kured_is_among_the_add_ons_init_applies(init):
    the_lab, docker, container = init
    plan = docker.run("exec", container, "python3", "-c", (
        "from pathlib import Path; from app.cluster import load_cluster; from app.cli.wait import wait_options; "
        "cluster, _ = load_cluster(Path('/config/cluster.yaml')); "
        "options = wait_options(cluster, Path('/templates'), api_timeout=1, nodes_timeout=1, poll=1, server=None, "
        "wait_gitops=False); print('\\n'.join(str(p) for p in options.plan.user))"))
    assert plan.returncode == 0, plan.stderr
    kured = "/usr/share/bootstrap-node/templates/addons/kured.yaml"
    assert kured in plan.stdout.splitlines()
    manifest = docker.run("exec", container, "cat", kured)
    assert "kind: DaemonSet" in manifest.stdout and "name: kured" in manifest.stdout


def test_teardown_in_the_container_ends_init(init):
    the_lab, docker, container = init
    done = docker.run("exec", container, "bootstrap-node", "teardown")
    # init is the container's PID 1: once it exits the kernel kills the rest of the container, often
    # teardown itself while it waits (137, SIGKILL) before it can say so; init's own exit is the proof.
    assert done.returncode in (0, 137), done.stdout + done.stderr
    wait_for(lambda: not running(docker, container), 60, "init to exit", interval=0.5)
    code = docker.run("inspect", "-f", "{{.State.ExitCode}}", container).stdout.strip()
    assert code == "130", logs(docker, container)
    assert "interrupted; stopped serving" in logs(docker, container)
    assert not (the_lab.output / "serve.json").exists()
    assert "serve-stopped" in [e["kind"] for e in the_lab.events()]
