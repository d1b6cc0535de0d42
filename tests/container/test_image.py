"""The real Dockerfile, built and run with both engines users have: Docker (a dockerd of the tests'
own, tests/support/engines.py) and podman, through python-on-whales: validate, generate into a
mounted directory, the templates mount, serve with --net=host, and an air-gapped build without the
disk image's .sig refused.

The build is air-gapped like a user's can be (tests/support/appliance_image.py): base image from
debootstrap when no registry is reachable, stand-in assets with SHA256SUMS (ASSETS=context), and a
wheelhouse (WHEELHOUSE). `docker run --net=host … init` in the lab is tests/e2e/test_lab_docker.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.request

import pytest

from tests.support.appliance_image import (
    BASE,
    CONTEXT_ASSETS,
    NOT_SERVED,
    SYSEXTS,
    TAG,
    baked_digest,
    build_args,
    build_image,
    context_images_refs,
)
from tests.support.engines import podman, private_dockerd
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import free_port, wait_for


@pytest.fixture(scope="module", params=["docker", "podman"])
def engine(request):
    if request.param == "podman":
        yield podman()
        return
    with private_dockerd() as docker:
        yield docker


@pytest.fixture(scope="module")
def image(engine):
    return build_image(engine)


def run(client, *args, volumes=(), **kw):
    from python_on_whales.exceptions import DockerException
    try:
        out = client.run(TAG, list(args), volumes=list(volumes), remove=True, networks=["host"], **kw)
        return 0, out
    except DockerException as exc:
        return exc.return_code, (exc.stdout or "") + (exc.stderr or "")


def test_labels_entrypoint_and_nothing_extra(image):
    client, built = image
    labels = built.config.labels
    assert labels["io.bootstrap-node.flatcar.version"] == "4593.2.5"
    assert labels["io.bootstrap-node.kubernetes.version"] == "v1.36.3"
    assert built.config.entrypoint == ["bootstrap-node"]
    code, out = run(client, "-c", "ls /opt/bootstrap-node/bin; command -v gcc cc pip || true; ls /var/lib/apt/lists",
                    entrypoint="sh")
    assert code == 0 and "bootstrap-node" in out and "gcc" not in out and "/pip" not in out


def test_assets_are_baked_where_generate_expects_them(image):
    client, _ = image
    code, out = run(client, "-c", "cat /assets/flatcar/4593.2.5/flatcar_production_pxe.vmlinuz; "
                    "ls /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/ipxe.efi; "
                    "grep -c kube-flannel-cfg /usr/share/bootstrap-node/templates/cni/flannel.yaml", entrypoint="sh")
    assert code == 0 and "stand-in flatcar/4593.2.5/flatcar_production_pxe.vmlinuz" in out
    assert out.strip().splitlines()[-1] == "1"  # the CNI manifest, where wait looks for it


def test_validate_good_and_bad(image, tmp_path):
    client, _ = image
    code, out = run(client, "validate", volumes=[(EXAMPLE, "/config/cluster.yaml", "ro")])
    assert code == 0 and "/config/cluster.yaml: valid" in out
    bad = tmp_path / "cluster.yaml"
    bad.write_text(EXAMPLE.read_text().replace("http_port: 8080", "http_prot: 8080"))
    code, out = run(client, "validate", volumes=[(bad, "/config/cluster.yaml", "ro")])
    assert code == 1 and "bootstrap.http_prot: unknown key 'http_prot'; did you mean 'http_port'?" in out


def test_generate_into_a_mounted_output(image, tmp_path):
    client, _ = image
    out = tmp_path / "output"
    out.mkdir()
    code, log = run(client, "generate", volumes=[(EXAMPLE, "/config/cluster.yaml", "ro"), (out, "/output")])
    assert code == 0, log
    assert (out / "matchbox" / "ignition" / "cp-1.ign").exists() and (out / "tftp" / "undionly.kpxe.0").exists()
    assert (out / "credentials" / "ca.key").stat().st_mode & 0o777 == 0o600
    # The sysext baked in the image is hashed into the nodes' configs.
    assert "sha512-" + hashlib.sha512(b"stand-in sysext/kubernetes-v1.36.3-x86-64.raw\n").hexdigest() in \
        (out / "matchbox" / "ignition" / "worker-1.ign").read_text()


def test_a_templates_mount_overrides_file_by_file(image, tmp_path):
    client, _ = image
    mine = tmp_path / "templates"
    mine.mkdir()
    builtin = (REPO / "app" / "templates" / "dnsmasq.conf.tmpl").read_text()
    (mine / "dnsmasq.conf.tmpl").write_text("# this site's dnsmasq.conf\n" + builtin)
    out = tmp_path / "output"
    out.mkdir()
    code, log = run(client, "generate", volumes=[(EXAMPLE, "/config/cluster.yaml", "ro"), (out, "/output"),
                                                 (mine, "/templates", "ro")])
    assert code == 0, log
    assert (out / "dnsmasq.conf").read_text().startswith("# this site's dnsmasq.conf\n")
    assert (out / "matchbox" / "ignition" / "cp-1.ign").exists()  # the other templates: the built-ins


def test_sysexts_are_baked_placed_and_their_sums_list_only_what_is_served(image, tmp_path):
    client, built = image
    assert built.config.labels["io.bootstrap-node.sysexts"] == SYSEXTS
    code, sums = run(client, "-c", "cat /assets/sysext/SHA256SUMS", entrypoint="sh")
    assert code == 0 and NOT_SERVED not in sums
    assert sorted(line.split()[1] for line in sums.splitlines()) == [
        "containerd-2.0.4-x86-64.raw", "kubernetes-v1.36.3-x86-64.raw"]
    config = tmp_path / "cluster.yaml"
    config.write_text(EXAMPLE.read_text() + "sysexts:\n  - {name: containerd, version: 2.0.4, roles: [worker]}\n"
                      "sysupdate: true\n")
    code, out = run(client, "validate", "--strict", volumes=[(config, "/config/cluster.yaml", "ro")])
    assert code == 0, out  # the file is in /assets, and the served SHA256SUMS lists only what is there
    out_dir = tmp_path / "output"
    out_dir.mkdir()
    code, log = run(client, "generate", volumes=[(config, "/config/cluster.yaml", "ro"), (out_dir, "/output")])
    assert code == 0, log
    worker = json.loads((out_dir / "matchbox" / "ignition" / "worker-1.ign").read_text())
    files = {f["path"]: f["contents"] for f in worker["storage"]["files"]}
    entry = files["/opt/extensions/containerd/containerd-2.0.4-x86-64.raw"]
    assert entry["verification"]["hash"] == "sha512-" + hashlib.sha512(
        b"stand-in sysext/containerd-2.0.4-x86-64.raw\n").hexdigest()
    assert "/etc/sysupdate.containerd.d/containerd.conf" in files
    controller = json.loads((out_dir / "matchbox" / "ignition" / "cp-1.ign").read_text())
    assert not any("containerd-2.0.4" in f["path"] for f in controller["storage"]["files"])


def test_images_are_baked_and_complete(image, tmp_path):
    client, _ = image
    code, out = run(client, "images", "--format", "json", volumes=[(EXAMPLE, "/config/cluster.yaml", "ro")])
    assert code == 0, out
    report = json.loads(out)
    assert report["layout"] == "/images" and report["missing"] == 0
    assert {e["ref"] for e in report["images"]} == set(context_images_refs())
    code, lock = run(client, "-c", "cat /images/images.lock", entrypoint="sh")
    assert code == 0 and f"registry.k8s.io/pause:3.10.2 {baked_digest('registry.k8s.io/pause:3.10.2')}" in lock


def test_serve_with_host_network(image, tmp_path):
    client, _ = image
    out = tmp_path / "output"
    out.mkdir()
    volumes = [(EXAMPLE, "/config/cluster.yaml", "ro"), (out, "/output")]
    assert run(client, "generate", volumes=volumes)[0] == 0
    port = free_port()
    container = client.run(TAG, ["serve", "--dhcp", "none", "--tftp", "none", "--listen", f"127.0.0.1:{port}"],
                           volumes=volumes, networks=["host"], detach=True)
    try:
        wait_for(lambda: (out / "serve.json").exists() or not container.reload() and not container.state.running,
                 60, "serve in the container")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/boot.ipxe") as r:
            assert r.read().startswith(b"#!ipxe\nchain ipxe?")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/assets/flatcar/4593.2.5/flatcar_production_pxe.vmlinuz") as r:
            assert r.read() == b"stand-in flatcar/4593.2.5/flatcar_production_pxe.vmlinuz\n"
        # The baked layout is the nodes' registry: skopeo pulls through it (the direct form).
        pause = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                f"docker://127.0.0.1:{port}/registry.k8s.io/pause:3.10.2"],
                               capture_output=True, text=True, timeout=60)
        assert pause.returncode == 0, pause.stderr
        assert json.loads(pause.stdout)["Digest"] == baked_digest("registry.k8s.io/pause:3.10.2")
        unknown = subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                  f"docker://127.0.0.1:{port}/registry.k8s.io/nope:1"],
                                 capture_output=True, text=True, timeout=60)
        assert unknown.returncode != 0 and "name unknown" in unknown.stderr
    finally:
        container.stop(time=20)
        container.reload()
        code = container.state.exit_code
        container.remove()
    assert code == 0


def test_an_air_gapped_build_without_the_disk_images_sig_is_refused(image, engine):
    """ASSETS=context with the disk image but not its .sig: the build stops at the assets stage and says
    what to copy (flatcar-install on the nodes refuses an image without it)."""
    signature = CONTEXT_ASSETS / "flatcar" / "4593.2.5" / "flatcar_production_image.bin.bz2.sig"
    aside = signature.with_name("sig.aside")  # the context's own directory (.dockerignore allows no other)
    engine.run("image", "rm", "-f", f"{TAG}-nosig")  # an earlier run's, had that build succeeded
    signature.rename(aside)
    try:
        args = [f"--build-arg={key}={value}" for key, value in build_args(BASE).items()]
        done = engine.run("build", "--network", "host", "-f", str(REPO / "Dockerfile"), "-t", f"{TAG}-nosig", *args,
                          str(REPO), timeout=1800)
    finally:
        aside.rename(signature)
    assert done.returncode != 0
    assert "missing /assets/flatcar/4593.2.5/flatcar_production_image.bin.bz2.sig" in done.stdout + done.stderr
    assert "flatcar-install refuses to install an image without its signature" in done.stdout + done.stderr
    assert engine.run("image", "inspect", f"{TAG}-nosig").returncode != 0  # no image came of it
