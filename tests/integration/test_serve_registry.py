"""Real clients against /v2/ of the real serve app: images built with podman, written to an OCI layout
by skopeo (`oci:DIR:registry.k8s.io/pause:3.10`), pulled by a real containerd through the hosts.toml
files a node gets (the ?ns= mirror form) and by skopeo pointed at us directly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web

from app.events import EventLog
from app.serve.app import build_app
from app.serve.boot.services import Services
from app.serve.boot.store import MatchboxStore
from app.serve.settings import AppSettings

PAUSE, KUBE_VIP, CILIUM, BUSYBOX = ("registry.k8s.io/pause:3.10", "ghcr.io/kube-vip/kube-vip:v0.8.0",
                                    "quay.io/cilium/cilium:v1.15.0", "docker.io/library/busybox:1.36")
MIRRORED = ("registry.k8s.io", "ghcr.io", "quay.io", "docker.io")


def need(*tools: str, root: bool = False) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Debian: apt-get install {tool})")
    if root and os.geteuid() != 0:
        pytest.skip("needs root (podman with its own storage root; containerd)")


def run(*argv: str, check: bool = True, timeout: float = 120, text: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=text, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr!s}")
    return result


def index_descriptor(layout: Path, ref: str) -> dict:
    index = json.loads((layout / "index.json").read_text())
    return next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == ref)


def blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


def closure(layout: Path, digest: str) -> set[str]:
    """Every digest an image needs, read straight from the layout's JSON."""
    document = json.loads(blob(layout, digest))
    found = {digest}
    for child in document.get("manifests", []):
        found |= closure(layout, child["digest"])
    for child in [document["config"], *document["layers"]] if "config" in document else []:
        found.add(child["digest"])
    return found


# -- fixtures: images, the server, containerd -------------------------------------------------------
@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    need("podman", "skopeo", root=True)
    work = tmp_path_factory.mktemp("images")
    storage = ["--root", str(work / "storage"), "--runroot", str(work / "run"), "--storage-driver", "vfs"]
    transport = f"containers-storage:[vfs@{work / 'storage'}+{work / 'run'}]"
    layout = work / "layout"

    def build(tag: str, content: str, platform: str = "linux/amd64") -> str:
        context = work / tag.replace(":", "-")
        context.mkdir()
        (context / "payload.txt").write_text(content)
        (context / "Containerfile").write_text("FROM scratch\nCOPY payload.txt /payload.txt\n")
        run("podman", *storage, "build", "--no-cache", "-q", "--platform", platform, "-t", f"localhost/{tag}",
            str(context))
        return f"localhost/{tag}"

    pause, kube_vip = build("pause:1", "pause\n"), build("kube-vip:1", "kube-vip " * 100)
    arm = build("cilium:arm64", "cilium\n", "linux/arm64")
    for image, ref in [(pause, PAUSE), (kube_vip, KUBE_VIP), (pause, BUSYBOX)]:
        run("skopeo", "copy", "-q", transport + image, f"oci:{layout}:{ref}")
    run("podman", *storage, "manifest", "create", "localhost/cilium:multi")
    for image in (pause, arm):
        run("podman", *storage, "manifest", "add", "localhost/cilium:multi", f"containers-storage:{image}")
    run("podman", *storage, "manifest", "push", "-q", "--all", "--format", "oci", "localhost/cilium:multi",
        f"oci:{layout}:{CILIUM}")
    return layout


@pytest.fixture(scope="module")
def server(layout, tmp_path_factory):
    """The serve app (build_app with AppSettings.images) on a loopback port, in its own thread."""
    out = tmp_path_factory.mktemp("serve")
    (out / "matchbox").mkdir()
    events = EventLog(out)
    events.open()
    services = Services(MatchboxStore(out / "matchbox"), events)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(build_app(AppSettings(data_dir=out / "matchbox", images=layout), services))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(port=port, address=f"127.0.0.1:{port}", ctx=services)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        events.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hosts_dir(server, tmp_path_factory) -> Path:
    """/etc/containerd/certs.d as a node gets it: each upstream registry mirrored by the appliance.
    The `server` line (upstream, the fallback after a miss) points at a closed loopback port here so
    that a test never reaches the internet; on a node it is https://<registry>."""
    root = tmp_path_factory.mktemp("certs.d")
    fallback = closed_port()
    for registry in MIRRORED:
        (root / registry).mkdir()
        (root / registry / "hosts.toml").write_text(
            f'server = "http://127.0.0.1:{fallback}"\n\n'
            f'[host."http://{server.address}"]\n  capabilities = ["pull", "resolve"]\n')
    return root


@pytest.fixture(scope="module")
def containerd(tmp_path_factory) -> Path:
    need("containerd", "ctr", root=True)
    work = tmp_path_factory.mktemp("containerd")
    sock = work / "containerd.sock"
    config = work / "config.toml"
    config.write_text(f'version = 2\nroot = "{work}/root"\nstate = "{work}/state"\n'
                      'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                      f'[grpc]\n  address = "{sock}"\n'
                      f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{work}/opt"\n')
    log = work / "containerd.log"
    with log.open("wb") as out:
        process = subprocess.Popen(["containerd", "--config", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while run("ctr", "--address", str(sock), "version", check=False, timeout=10).returncode != 0:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"containerd did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield sock
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ctr(sock: Path, namespace: str, *args: str, check: bool = True, text: bool = True) -> subprocess.CompletedProcess:
    return run("ctr", "--address", str(sock), "--namespace", namespace, *args, check=check, text=text)


# -- containerd through hosts.toml (?ns= requests) --------------------------------------------------
@pytest.mark.parametrize(("ref", "extra"), [(PAUSE, []), (KUBE_VIP, []), (BUSYBOX, []),
                                            (CILIUM, ["--all-platforms"])])
def test_containerd_fetches_through_the_mirror(layout, hosts_dir, containerd, ref, extra):
    namespace = "t" + hashlib.sha256(ref.encode()).hexdigest()[:8]
    ctr(containerd, namespace, "content", "fetch", "--hosts-dir", str(hosts_dir), *extra, ref)
    expected = index_descriptor(layout, ref)["digest"]
    image = next(line.split() for line in ctr(containerd, namespace, "images", "ls").stdout.splitlines()
                 if line.startswith(ref + " "))
    assert image[2] == expected  # the image record points at the layout's manifest or index
    fetched = set(ctr(containerd, namespace, "content", "ls", "-q").stdout.split())
    assert fetched == closure(layout, expected)
    for digest in fetched:  # containerd verified each digest on the way in; its bytes are the layout's
        assert ctr(containerd, namespace, "content", "get", digest, text=False).stdout == blob(layout, digest)


def test_containerd_unknown_image_gets_our_404_then_falls_back(hosts_dir, containerd, server):
    misses = server.ctx.metrics.requests[("/v2/{tail}", 404)]
    result = ctr(containerd, "unknown", "content", "fetch", "--hosts-dir", str(hosts_dir),
                 "registry.k8s.io/nope:1", check=False)
    assert result.returncode != 0
    assert server.ctx.metrics.requests[("/v2/{tail}", 404)] > misses
    # containerd's own account of our answer before it tries the upstream (here: a closed port)
    assert "StatusNotFound" in result.stderr and server.address in result.stderr


# -- skopeo pointed at us directly ------------------------------------------------------------------
def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    need("skopeo")
    return run("skopeo", *args, check=check)


def test_skopeo_inspect_direct_form(layout, server):
    data = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{server.address}/{PAUSE}").stdout)
    assert data["Digest"] == index_descriptor(layout, PAUSE)["digest"]
    assert data["RepoTags"] == ["3.10"] and data["Architecture"] == "amd64"


def test_skopeo_reads_the_multi_arch_index_unchanged(layout, server):
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{server.address}/{CILIUM}").stdout
    assert raw.encode() == blob(layout, index_descriptor(layout, CILIUM)["digest"])
    arm = json.loads(skopeo("inspect", "--override-arch", "arm64", "--tls-verify=false",
                            f"docker://{server.address}/{CILIUM}").stdout)
    assert arm["Architecture"] == "arm64"


def test_skopeo_copy_gets_every_blob_intact(layout, server, tmp_path):
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{server.address}/{KUBE_VIP}", f"dir:{tmp_path / 'out'}")
    copied = {f.name: f.read_bytes() for f in (tmp_path / "out").iterdir() if len(f.name) == 64}
    expected = closure(layout, index_descriptor(layout, KUBE_VIP)["digest"]) - {index_descriptor(layout, KUBE_VIP)["digest"]}
    assert {f"sha256:{name}" for name in copied} == expected  # config and layers
    for name, data in copied.items():
        assert hashlib.sha256(data).hexdigest() == name and data == blob(layout, f"sha256:{name}")


@pytest.mark.parametrize(("ref", "message"), [("registry.k8s.io/nope:3.10", "name unknown"),
                                              ("registry.k8s.io/pause:9.99", "manifest unknown")])
def test_skopeo_unknown_image_error(server, ref, message):
    result = skopeo("inspect", "--tls-verify=false", f"docker://{server.address}/{ref}", check=False)
    assert result.returncode != 0 and message in result.stderr


# -- containerd through EXACTLY the hosts.toml files a generated final Ignition carries --------------
CERTS_D = "/etc/containerd/certs.d/"


@pytest.fixture(scope="module")
def ignition_hosts_dir(server, tmp_path_factory) -> Path:
    """`generate` for a cluster whose appliance is this test server (bootstrap.ip 127.0.0.1, http_port
    its port); the hosts.toml files decoded from a node's final Ignition, written unchanged. Their
    `server =` lines are the real upstreams (https://registry.k8s.io, ...), unreachable here."""
    from typer.testing import CliRunner

    from app.cli import app
    from tests.unit.test_generate import files_of

    work = tmp_path_factory.mktemp("generated")
    config = work / "cluster.yaml"
    config.write_text(f"""
cluster: {{name: lo, k8s_version: v1.36.3, flatcar_version: 4593.2.5,
          ssh_authorized_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILCm5HyiNUklxeNjQCKDT3uL5tp2/TNtCN+HJuY6Idr/ a@b"}}
bootstrap: {{ip: 127.0.0.1, http_port: {server.port}}}
network: {{cidr: 127.0.0.0/8, gateway: 127.0.0.254, dns: [127.0.0.53]}}
nodes: [{{name: cp-1, role: controller, mac: "52:54:00:00:00:11", ip: 127.0.0.11,
         install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c211}}]
""")
    result = CliRunner().invoke(app, ["--config", str(config), "--output", str(work / "out"), "--templates",
                                      "/nonexistent", "generate", "--assets", str(work / "none"),
                                      "--images", str(work / "none")])
    assert result.exit_code == 0, result.output
    files = files_of(json.loads((work / "out" / "matchbox" / "ignition" / "cp-1.ign").read_text()))
    root = work / "certs.d"
    for path, data in files.items():
        if path.startswith(CERTS_D):
            (root / path[len(CERTS_D):]).parent.mkdir(parents=True, exist_ok=True)
            (root / path[len(CERTS_D):]).write_bytes(data)
    assert sorted(p.parent.name for p in root.glob("*/hosts.toml")) == sorted(MIRRORED)
    return root


@pytest.mark.parametrize(("ref", "extra"), [(PAUSE, []), (KUBE_VIP, []), (BUSYBOX, []),
                                            (CILIUM, ["--all-platforms"])])
def test_containerd_fetches_with_the_generated_hosts_toml(layout, ignition_hosts_dir, containerd, ref, extra):
    namespace = "g" + hashlib.sha256(ref.encode()).hexdigest()[:8]
    ctr(containerd, namespace, "content", "fetch", "--hosts-dir", str(ignition_hosts_dir), *extra, ref)
    expected = index_descriptor(layout, ref)["digest"]
    fetched = set(ctr(containerd, namespace, "content", "ls", "-q").stdout.split())
    assert fetched == closure(layout, expected)  # the upstream is unreachable: every byte came from us
    for digest in fetched:
        assert ctr(containerd, namespace, "content", "get", digest, text=False).stdout == blob(layout, digest)


def test_generated_hosts_toml_unknown_image_gets_our_404(ignition_hosts_dir, containerd, server):
    misses = server.ctx.metrics.requests[("/v2/{tail}", 404)]
    result = ctr(containerd, "gunknown", "content", "fetch", "--hosts-dir", str(ignition_hosts_dir),
                 "registry.k8s.io/nope:1", check=False)
    assert result.returncode != 0
    assert server.ctx.metrics.requests[("/v2/{tail}", 404)] > misses
    assert "StatusNotFound" in result.stderr and server.address in result.stderr
