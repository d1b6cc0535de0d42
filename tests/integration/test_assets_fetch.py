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
from pathlib import Path

import pytest

from app.cluster import load_cluster
from app.cluster.preflight import missing_assets
from tests.support.paths import REPO

SINGLE = REPO / "examples" / "single-node.yaml"
FLATCAR = "flatcar/4081.3.6"
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
    return gpg, public, key_id


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


def fetch(dest: Path, source: Path, key=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if key:
        _, public, key_id = key
        env |= {"FLATCAR_SIGNING_KEY": str(public), "FLATCAR_SIGNING_KEY_ID": key_id}
    return subprocess.run([sys.executable, "-m", "app", "--config", str(SINGLE), "assets", "fetch", str(dest),
                           "--from", str(source)], cwd=REPO, capture_output=True, text=True, env=env, timeout=120)


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
    assert done.returncode == 1
    assert "still missing for init" in done.stderr and "flatcar_production_image.bin.bz2.sig is missing" in done.stderr


def test_from_a_directory_that_is_not_there(tmp_path):
    done = fetch(tmp_path / "assets", tmp_path / "nowhere")
    assert done.returncode == 1 and "no such directory" in done.stderr
