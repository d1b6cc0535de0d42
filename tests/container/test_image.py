"""The real Dockerfile, built and run with both engines users have: Docker (a dockerd of the tests'
own, tests/support/engines.py) and podman, through python-on-whales: validate, generate into a
mounted directory, the templates mount, serve with --net=host.

The build is air-gapped like a user's can be: base image from debootstrap when no registry is
reachable, stand-in assets with SHA256SUMS (ASSETS=context), and a wheelhouse (WHEELHOUSE)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.support.engines import Engine, debootstrap_tarball, import_rootfs, podman, private_dockerd
from tests.support.paths import EXAMPLE, REPO
from tests.support.processes import free_port, wait_for

TAG = "localhost/bootstrap-node:test"
BASE = "localhost/debian:bookworm-slim"
CONTEXT_ASSETS = REPO / "build" / "container-assets"
CONTEXT_IMAGES = REPO / "build" / "container-images"
PAYLOAD = "localhost/bootstrap-node-payload:test"
WHEELS = REPO / "build" / "wheels"
STANDINS = ["flatcar/4593.2.5/flatcar_production_pxe.vmlinuz", "flatcar/4593.2.5/flatcar_production_pxe_image.cpio.gz",
            "flatcar/4593.2.5/flatcar_production_image.bin.bz2", "flatcar/4593.2.5/flatcar_production_image.bin.bz2.sig",
            "sysext/kubernetes-v1.36.3-x86-64.raw",
            "sysext/containerd-2.0.4-x86-64.raw", "cni/flannel.yaml"]
SYSEXTS = "containerd-2.0.4"  # baked from the context, like a bakery download
NOT_SERVED = "kubernetes-v1.36.4-x86-64.raw"  # in the context's SHA256SUMS (as in the bakery's), not baked


@pytest.fixture(scope="module", params=["docker", "podman"])
def engine(request):
    if request.param == "podman":
        yield podman()
        return
    with private_dockerd() as docker:
        yield docker


def base_image(client, engine: Engine) -> str:
    """A bookworm root file system from debootstrap when there is no registry to pull from."""
    if not client.image.exists(BASE):
        import_rootfs(engine, debootstrap_tarball(), BASE)
    return BASE


def context_inputs() -> None:
    shutil.rmtree(CONTEXT_ASSETS, ignore_errors=True)
    for rel in STANDINS:
        path = CONTEXT_ASSETS / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((REPO / "tests" / "fixtures" / "kube-flannel.yml").read_bytes() if rel.startswith("cni/")
                         else f"stand-in {rel}\n".encode())
    for directory in {(CONTEXT_ASSETS / rel).parent for rel in STANDINS}:
        lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(directory.iterdir())]
        if directory.name == "sysext":
            lines.append(f"{'0' * 64}  {NOT_SERVED}\n")
        (directory / "SHA256SUMS").write_text("".join(lines))
    if not any(WHEELS.glob("*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(WHEELS), "-c",
                        str(REPO / "requirements.lock"), str(REPO)], check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(WHEELS),
                        "setuptools>=68"], check=True, capture_output=True)
    for stale in WHEELS.glob("bootstrap_node-*.whl"):
        stale.unlink()  # the image builds the app from this checkout's source


def context_images() -> list[str]:
    """An OCI layout with every image the app says the image must bake (kubeadm's for v1.36.3, kube-vip,
    the stand-in flannel manifest's, the built-in add-ons'), all one tiny podman-built image under each
    name, whichever engine then builds the appliance. Returns the refs."""
    from app.render.images import KUBE_VIP_IMAGE, kubeadm_images, manifest_images
    if shutil.which("skopeo") is None or shutil.which("podman") is None:
        pytest.skip("needs podman and skopeo to make the image layout the build takes (IMAGES=context)")
    addons = sorted((REPO / "app" / "templates" / "addons").glob("*.yaml"))  # kured's, baked like the CNI's
    refs = [*kubeadm_images("v1.36.3"), KUBE_VIP_IMAGE,
            *manifest_images(REPO / "tests" / "fixtures" / "kube-flannel.yml"),
            *(ref for manifest in addons for ref in manifest_images(manifest))]
    shutil.rmtree(CONTEXT_IMAGES, ignore_errors=True)
    payload = REPO / "build" / "payload"
    payload.mkdir(parents=True, exist_ok=True)
    (payload / "Containerfile").write_text("FROM scratch\nCOPY payload.txt /payload.txt\n")
    (payload / "payload.txt").write_text("stand-in image\n")
    subprocess.run(["podman", "build", "-q", "--platform", "linux/amd64", "-t", PAYLOAD, str(payload)], check=True,
                   capture_output=True)
    for ref in refs:
        subprocess.run(["skopeo", "copy", "-q", f"containers-storage:{PAYLOAD}", f"oci:{CONTEXT_IMAGES}:{ref}"],
                       check=True, capture_output=True)
    return refs


@pytest.fixture(scope="module")
def image(engine):
    from python_on_whales import DockerClient
    client = DockerClient(client_call=engine.call)
    base = base_image(client, engine)
    context_inputs()
    context_images()
    started = time.monotonic()
    client.legacy_build(REPO, file=REPO / "Dockerfile", tags=[TAG], network="host", build_args={
        "BASE_IMAGE": base, "ASSETS": "context", "ASSETS_DIR": "build/container-assets",
        "WHEELHOUSE": "build/wheels", "IMAGES": "context", "IMAGES_DIR": "build/container-images",
        "SYSEXTS": SYSEXTS})
    built = client.image.inspect(TAG)
    report = REPO / "build" / f"container-report-{engine.name}.txt"
    report.write_text(f"engine {engine.name}; build {time.monotonic() - started:.0f}s; "
                      f"size {built.size / 1e6:.0f} MB\n")
    return client, built


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


def baked_digest(ref: str) -> str:
    index = json.loads((CONTEXT_IMAGES / "index.json").read_text())
    return next(m["digest"] for m in index["manifests"]
                if m["annotations"]["org.opencontainers.image.ref.name"] == ref)


def test_images_are_baked_and_complete(image, tmp_path):
    client, _ = image
    code, out = run(client, "images", "--format", "json", volumes=[(EXAMPLE, "/config/cluster.yaml", "ro")])
    assert code == 0, out
    report = json.loads(out)
    assert report["layout"] == "/images" and report["missing"] == 0
    assert {e["ref"] for e in report["images"]} == set(context_images_refs())
    code, lock = run(client, "-c", "cat /images/images.lock", entrypoint="sh")
    assert code == 0 and f"registry.k8s.io/pause:3.10.2 {baked_digest('registry.k8s.io/pause:3.10.2')}" in lock


def context_images_refs() -> list[str]:
    index = json.loads((CONTEXT_IMAGES / "index.json").read_text())
    return [m["annotations"]["org.opencontainers.image.ref.name"] for m in index["manifests"]]


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
