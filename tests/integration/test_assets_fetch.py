"""`bootstrap-node assets fetch --from DIR`: a directory standing in for the release servers (as a site
without internet has), verified by the same script the image build runs, then preflight-clean for
`init`. The stand-in Flatcar files are signed with a throwaway key given in place of Flatcar's (the
script's FLATCAR_SIGNING_KEY); without it, Flatcar's own key rejects them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from app.cluster import load_cluster
from app.cluster.preflight import fetch_environments, missing_assets
from tests.support.addon_modules import addon, member, module_zip
from tests.support.paths import REPO, flatcar_version_of
from tests.support.processes import wait_for

SINGLE = REPO / "examples" / "single-node.yaml"
VERSION = flatcar_version_of(SINGLE)
FLATCAR = f"flatcar/{VERSION}"
IMAGES = ["flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz", "flatcar_production_image.bin.bz2"]


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory):
    if shutil.which("gpg") is None:
        pytest.skip("needs gpg")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet"]
    subprocess.run([*gpg, "--passphrase", "", "--quick-gen-key", "stand-in <t@example>", "ed25519", "sign", "never"],
                   check=True, capture_output=True)
    listing = subprocess.run([*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True)
    key_id = next(line.split(":")[4] for line in listing.stdout.splitlines() if line.startswith("pub:"))
    public = home / "public.asc"
    public.write_bytes(subprocess.run([*gpg, "--armor", "--export", key_id], check=True, capture_output=True).stdout)
    yield gpg, public, key_id
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)


def gpg_agents() -> int:
    return len([p for p in Path("/proc").iterdir() if p.name.isdigit() and _comm(p) == "gpg-agent"])


def _comm(proc: Path) -> str:
    try:
        return (proc / "comm").read_text().strip()
    except OSError:
        return ""


def sums(directory: Path, names: list[str]) -> None:
    (directory / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256((directory / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


@pytest.fixture
def release_servers(tmp_path, signing_key):
    """The files as Flatcar, the sysext bakery and flannel publish them, with their .sig and SHA256SUMS."""
    gpg, _, _ = signing_key
    root = tmp_path / "mirror"
    (root / FLATCAR).mkdir(parents=True)
    for name in IMAGES:
        path = root / FLATCAR / name
        path.write_bytes(f"stand-in {name}\n".encode())
        subprocess.run([*gpg, "--detach-sign", "-o", f"{path}.sig", str(path)], check=True, capture_output=True)
    (root / "sysext").mkdir()
    (root / "sysext" / "kubernetes-v1.36.3-x86-64.raw").write_bytes(b"stand-in sysext\n")
    sums(root / "sysext", ["kubernetes-v1.36.3-x86-64.raw"])
    (root / "cni").mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "kube-flannel.yml", root / "cni" / "flannel.yaml")
    sums(root / "cni", ["flannel.yaml"])
    return root


def fetch(dest: Path, source: Path | None, key=None, env: dict | None = None,
          extra: list[str] | None = None, config: Path = SINGLE) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    if key:
        _, public, key_id = key
        env |= {"FLATCAR_SIGNING_KEY": str(public), "FLATCAR_SIGNING_KEY_ID": key_id}
    where = ["--from", str(source)] if source else []
    return subprocess.run([sys.executable, "-m", "app", "--config", str(config), "assets", "fetch", str(dest), *where, *(extra or [])],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=120)


def test_fetch_from_a_mirror_leaves_init_nothing_to_miss(tmp_path, release_servers, signing_key):
    dest = tmp_path / "assets"
    done = fetch(dest, release_servers, signing_key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "everything the nodes fetch is here and verified" in done.stdout
    cluster, _ = load_cluster(SINGLE)
    assert missing_assets(cluster, dest) == []
    assert (dest / FLATCAR / "flatcar_production_image.bin.bz2.sig").is_file()


def test_a_tampered_image_is_refused(tmp_path, release_servers, signing_key):
    (release_servers / FLATCAR / "flatcar_production_pxe.vmlinuz").write_bytes(b"tampered\n")
    done = fetch(tmp_path / "assets", release_servers, signing_key)
    assert done.returncode == 1 and "bad signature" in done.stderr and "flatcar_production_pxe.vmlinuz" in done.stderr


def test_flatcars_own_key_is_the_default(tmp_path, release_servers):
    done = fetch(tmp_path / "assets", release_servers)
    assert done.returncode == 1 and "bad signature" in done.stderr


def test_without_the_images_signature_init_would_still_miss_it(tmp_path, release_servers, signing_key):
    image = release_servers / FLATCAR / "flatcar_production_image.bin.bz2"
    Path(f"{image}.sig").unlink()
    sums(release_servers / FLATCAR, ["flatcar_production_image.bin.bz2"])  # verified, but flatcar-install needs .sig
    done = fetch(tmp_path / "assets", release_servers, signing_key)
    assert done.returncode == 1  # the verify step refuses it, naming the file flatcar-install would ask for
    assert "missing" in done.stderr and "flatcar_production_image.bin.bz2.sig" in done.stderr


def test_verifying_leaves_no_gpg_agent_behind(tmp_path, release_servers, signing_key):
    """Each run's throwaway GNUPGHOME starts an agent; one left per run exhausted the machine's
    inotify instances (kubelet and containerd then could not start)."""
    before = gpg_agents()
    for n in range(3):
        assert fetch(tmp_path / f"ok{n}", release_servers, signing_key).returncode == 0
    (release_servers / FLATCAR / "flatcar_production_pxe.vmlinuz").write_bytes(b"tampered\n")
    for n in range(3):  # a refusal exits early: the agent must be stopped on that path too
        assert "bad signature" in fetch(tmp_path / f"bad{n}", release_servers, signing_key).stderr
    # gpgconf --kill asks the agent to exit and returns; the last one may take a moment to go.
    wait_for(lambda: gpg_agents() <= before, timeout=15, what="the asset script's gpg-agents to exit")


def test_from_a_directory_that_is_not_there(tmp_path):
    done = fetch(tmp_path / "assets", tmp_path / "nowhere")
    assert done.returncode == 1 and "no such directory" in done.stderr


class RangeServer(SimpleHTTPRequestHandler):
    """A release server: files, and byte ranges of them as curl asks to resume. Records each request."""

    log: list[tuple[str, int]]

    def send_head(self):
        asked = self.headers.get("Range")
        self.log.append((self.path, int(asked.split("=")[1].split("-")[0]) if asked else 0))
        if not asked:
            return super().send_head()
        path = Path(self.translate_path(self.path))
        start = self.log[-1][1]
        if not path.is_file() or start >= path.stat().st_size:
            self.send_error(416)
            return None
        body = path.open("rb")
        size = path.stat().st_size
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        body.seek(start)
        return body

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def flannel_zip():
    """flannel's real release tree, as the Go module proxy serves it (and as pinned)."""
    a = addon("FLANNEL")
    return a, module_zip(a)[0]


@pytest.fixture
def mirror(tmp_path, release_servers, flannel_zip):
    """The official servers' layout (Flatcar's, the sysext bakery's, the Go module proxy) on loopback."""
    root = tmp_path / "www"
    shutil.copytree(release_servers / FLATCAR, root / "flatcar" / "amd64-usr" / VERSION)
    (root / "ext" / "kubernetes-v1.36.3").mkdir(parents=True)
    shutil.copy(release_servers / "sysext" / "kubernetes-v1.36.3-x86-64.raw", root / "ext")
    shutil.copy(release_servers / "sysext" / "SHA256SUMS", root / "ext" / "kubernetes-v1.36.3" / "SHA256SUMS")
    flannel, zip_path = flannel_zip
    (root / "proxy" / flannel.proxy_path).parent.mkdir(parents=True)
    shutil.copy(zip_path, root / "proxy" / flannel.proxy_path)
    handler = type("Handler", (RangeServer,), {"log": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    env = {"FLATCAR_BASE_URL": f"{url}/flatcar", "SYSEXT_BASE_URL": f"{url}/ext", "MODULE_PROXY_URL": f"{url}/proxy"}
    yield env, handler.log, root / "proxy" / flannel.proxy_path
    server.shutdown()
    server.server_close()


def test_downloads_resume_and_are_not_fetched_twice(tmp_path, mirror, signing_key, release_servers, flannel_zip):
    """No FLANNEL_SHA256 given: the pinned release is fetched from the (local) module proxy and checked."""
    env, log, _ = mirror
    dest = tmp_path / "assets"
    image = "flatcar_production_image.bin.bz2"
    whole = (release_servers / FLATCAR / image).read_bytes()
    (dest / FLATCAR).mkdir(parents=True)
    (dest / FLATCAR / f"{image}.part").write_bytes(whole[:5])  # what an interrupted run left
    done = fetch(dest, None, signing_key, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (dest / FLATCAR / image).read_bytes() == whole and not (dest / FLATCAR / f"{image}.part").exists()
    assert (f"/flatcar/amd64-usr/{VERSION}/{image}", 5) in log  # asked only for the rest
    flannel, zip_path = flannel_zip
    assert (dest / "cni" / "flannel.yaml").read_bytes() == member(zip_path, flannel, flannel.manifest)
    assert not (dest / "gitops" / "argo-cd.yaml").exists()  # no gitops in this cluster: Argo CD's 58 MB stay away
    log.clear()
    again = fetch(dest, None, signing_key, env)
    assert again.returncode == 0, again.stderr
    assert not [path for path, _ in log if path.startswith("/flatcar/") or path.endswith(".raw")]


def test_a_tampered_module_zip_is_refused(tmp_path, mirror, signing_key, flannel_zip):
    """A mirror serving flannel's tree with another image in the manifest: refused, nothing extracted,
    and the bad download removed (the next run fetches it again)."""
    env, _, served = mirror
    flannel, zip_path = flannel_zip
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(served, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            out.writestr(name, data.replace(b"ghcr.io/flannel-io/flannel:", b"evil.example/flannel:")
                         if name == flannel.prefix + flannel.manifest else data)
    dest = tmp_path / "assets"
    done = fetch(dest, None, signing_key, env)
    assert done.returncode == 1 and "checksum mismatch" in done.stderr and flannel.proxy_path in done.stderr
    assert not (dest / "cni" / "flannel.yaml").exists()
    assert not list((dest / ".modules").iterdir())


def test_another_release_needs_its_own_sum(tmp_path, mirror, signing_key):
    env, log, _ = mirror
    done = fetch(tmp_path / "assets", None, signing_key, {**env, "FLANNEL_SHA256": ""},
                 ["--flannel-version", "v0.28.4"])
    assert done.returncode == 1 and "not the pinned" in done.stderr and "v0.28.4" in done.stderr
    assert log == []  # refused before any download: Flatcar's included
    wrong = fetch(tmp_path / "assets", None, signing_key, {**env, "FLANNEL_SHA256": "0" * 64})
    assert wrong.returncode == 1 and "checksum mismatch" in wrong.stderr


def test_the_image_build_takes_a_built_cilium_cli_from_its_context(tmp_path, mirror, signing_key):
    """Download mode with ASSETS_DIR holding bin/cilium (scripts/cilium-cli-binary's build): the image's
    /assets/bin/cilium, which the runtime stage puts on PATH, is that binary, and it runs."""
    from tests.integration.test_cilium_cli import VERSION, cilium  # cilium() skips when it is not built
    env, _, _ = mirror
    _, public, key_id = signing_key
    cluster, _ = load_cluster(SINGLE)
    context = tmp_path / "context"
    (context / "bin").mkdir(parents=True)
    shutil.copy(cilium(), context / "bin" / "cilium")
    dest = tmp_path / "assets"
    script = REPO / "app" / "asset_scripts" / "fetch-and-verify"
    for arch_env in fetch_environments(cluster):
        done = subprocess.run(["sh", str(script), "download", str(context), str(dest)], capture_output=True, text=True,
                              env={**os.environ, **env, **arch_env, "FLATCAR_SIGNING_KEY": str(public),
                                   "FLATCAR_SIGNING_KEY_ID": key_id, "ARGOCD_VERSION": "none"}, timeout=300)
        assert done.returncode == 0, done.stderr
    version = subprocess.run([str(dest / "bin" / "cilium"), "version", "--client"], capture_output=True, text=True)
    assert f"cilium-cli: {VERSION}" in version.stdout


def test_a_gitops_cluster_gets_argo_cds_manifest_from_its_pinned_tree(tmp_path, mirror, signing_key):
    """Argo CD's real 58 MB release tree, served by the (local) module proxy: checked against its pin,
    then only manifests/install.yaml extracted, as `wait` applies it."""
    env, log, served = mirror
    argocd = addon("ARGOCD")
    zip_path, _ = module_zip(argocd)
    proxy = served.parents[4]  # served is proxy/github.com/flannel-io/flannel/@v/<version>.zip
    (proxy / argocd.proxy_path).parent.mkdir(parents=True)
    shutil.copy(zip_path, proxy / argocd.proxy_path)
    config = tmp_path / "gitops.yaml"
    config.write_text(SINGLE.read_text() + "\ngitops: {repo: https://git.example.com/infra.git}\n")
    dest = tmp_path / "assets"
    done = fetch(dest, None, signing_key, env, config=config)
    assert done.returncode == 0, done.stderr
    assert (dest / "gitops" / "argo-cd.yaml").read_bytes() == member(zip_path, argocd, argocd.manifest)
    assert (f"/proxy/{argocd.proxy_path}", 0) in log


def test_a_hostile_module_zip_writes_only_the_manifest(tmp_path, mirror, signing_key, flannel_zip):
    """Another release, pinned by its own sum (so the zip is whatever its author made): members whose
    names climb out of the tree, and the manifest itself as a symlink to a file on this machine. Only
    the manifest's own bytes reach DEST/cni/flannel.yaml; nothing is written anywhere else."""
    env, _, served = mirror
    flannel, _ = flannel_zip
    version = "v0.28.99"
    prefix = f"{flannel.module}@{version}/"
    hostile = served.parent / f"{version}.zip"
    outside = tmp_path / "escaped"
    with zipfile.ZipFile(hostile, "w") as out:
        climb = prefix + "../" * 30  # past / from wherever it is extracted: then down to `outside`
        for name in (climb + str(outside).lstrip("/"), f"{prefix}../../cni/flannel.yaml", str(outside)):
            out.writestr(name, b"escaped\n")
        link = zipfile.ZipInfo(prefix + flannel.manifest)
        link.create_system, link.external_attr = 3, (0o120777 << 16)  # a symlink, as unix zip stores one
        out.writestr(link, b"/etc/passwd")
    sha = hashlib.sha256(hostile.read_bytes()).hexdigest()
    dest = tmp_path / "assets"
    done = fetch(dest, None, signing_key, {**env, "FLANNEL_SHA256": sha}, ["--flannel-version", version])
    assert not outside.exists() and not (tmp_path / "cni").exists()
    manifest = dest / "cni" / "flannel.yaml"
    if done.returncode == 0:
        assert not manifest.is_symlink() and manifest.read_bytes() == b"/etc/passwd"  # the link's text, not the file
    else:
        assert not manifest.exists(), done.stderr
    assert sorted(p.name for p in (dest / "cni").iterdir()) in ([], ["flannel.yaml"])
