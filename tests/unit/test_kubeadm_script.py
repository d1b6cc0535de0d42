"""The first controller's kubeadm.sh, run as rendered (bash, in a scratch root, with a stand-in kubeadm
that writes what `kubeadm init` writes): after init, kube-vip mounts admin.conf and super-admin.conf
leaves the node (the kube-vip/kube-vip#684 workaround)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.layout import CREDENTIAL_PATH
from tests.unit.test_generate import files_of, ignition, out  # noqa: F401 - `out` is the generated tree

KUBEADM = """#!/bin/sh
# Stand-in kubeadm: `init` writes the kubeconfigs kubeadm init writes (1.29+), and succeeds.
echo "$*" >> "$ROOT/kubeadm.calls"
case "$1" in
  init) for f in admin.conf super-admin.conf kubelet.conf; do echo "$f" > "$ROOT/etc/kubernetes/$f"; done ;;
esac
"""


def run_kubeadm_script(out: Path, tmp_path: Path, node: str) -> Path:  # noqa: F811
    if shutil.which("bash") is None:
        pytest.skip("needs bash")
    files = files_of(ignition(out, node))
    root = tmp_path / "root"
    paths = {"/etc/kubernetes": f"{root}/etc/kubernetes", "/opt/bootstrap-node": f"{root}/opt/bootstrap-node",
             "/var/lib/bootstrap-node": f"{root}/var/lib/bootstrap-node", "/run/bootstrap-node": f"{root}/run",
             "/oem /usr/share/oem": f"{root}/oem", "/dev/disk/by-label/OEM": f"{root}/no-oem"}
    for path, data in files.items():
        if path.startswith("/opt/bootstrap-node/kubernetes/"):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    (root / "etc" / "kubernetes").mkdir(parents=True, exist_ok=True)
    script = files["/opt/bootstrap-node/kubeadm.sh"].decode().replace(CREDENTIAL_PATH, f"{root}/credential")
    for old, new in paths.items():  # not the manifest's own paths, which sed rewrites
        script = re.sub(rf"(?<!path: ){re.escape(old)}", new, script)
    (root / "kubeadm.sh").write_text(script)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubeadm").write_text(KUBEADM)
    (bin_dir / "curl").write_text("#!/bin/sh\nexit 7\n")  # no cluster answers yet; reports go nowhere
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "ROOT": str(root)}
    run = subprocess.run(["bash", str(root / "kubeadm.sh")], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (root / "kubeadm.calls").read_text().startswith("init --upload-certs")
    return root / "etc" / "kubernetes"


def test_after_init_kube_vip_mounts_admin_conf_and_super_admin_conf_is_gone(out, tmp_path):  # noqa: F811
    kube = run_kubeadm_script(out, tmp_path, "cp-1")
    manifest = yaml.safe_load((kube / "manifests" / "kube-vip.yaml").read_text())
    assert manifest["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf"
    assert not (kube / "super-admin.conf").exists() and (kube / "admin.conf").exists()
    assert "super-admin" not in (kube / "manifests" / "kube-vip.yaml").read_text()
