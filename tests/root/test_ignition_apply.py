"""Real Ignition applies the configs the appliance renders: the `ignition` binary Flatcar's initramfs
runs (fetch and files stages, as its ignition-fetch/ignition-files units do) writes the install
config of a controller and the final config of a worker with system extensions into a root
directory, and the result is checked against the config entry by entry: files (contents, mode,
owner), directories, links (the sysext links in /etc/extensions), units with their drop-ins,
enablement (Ignition's preset file) and masks, and core's SSH keys. Remote contents (the sysext
images) are fetched over HTTP from `serve`, hash-checked by Ignition.

It runs in its own network and mount namespaces: the appliance's address (the lab cluster's
10.99.0.2) on that namespace's loopback, and a private /run for Ignition's state and the root it writes (bind-mounted at /run/sysroot). Needs root.
No QEMU and no disk: partitions are not created here (the lab's configs define none)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app import pki
from app.cluster import load_cluster
from app.cluster.sysexts import ASSET_DIR, node_sysexts
from app.render.templates import Templates
from app.render.tree import Appliance, render_tree
from tests.support import ignition_fs
from tests.support.paths import REPO
from tests.support.real_programs import ignition_dir

LAB = REPO / "scripts" / "lab" / "cluster.yaml"
APPLIANCE = "10.99.0.2:8080"  # the lab cluster's bootstrap address and port
# In the namespace: the address, a private /run, the appliance serving the assets, then Ignition's
# stages one after the other, as Flatcar's initramfs runs them.
SCRIPT = r"""
set -eu
ip link set lo up
ip addr add 10.99.0.2/32 dev lo
mount -t tmpfs tmpfs /run
# Ignition writes core's SSH keys as core: the root it writes to must be reachable by that user,
# which pytest's private temporary directory is not. /sysroot is where Flatcar mounts it.
mkdir /run/sysroot && mount --bind "$ROOT" /run/sysroot
# --matchbox-data-with-secrets: the lab tree holds keys; this namespace's loopback is the only client.
"$PY" -m app --output "$WORK/serve-out" serve --matchbox-data "$WORK/data" --matchbox-data-with-secrets \
  --listen 10.99.0.2:8080 \
  --dhcp none --tftp none --assets "$WORK/assets" --bind address >"$WORK/serve.log" 2>&1 &
serve=$!
trap 'kill $serve; wait $serve || true' EXIT
tries=0
until (exec 3<>/dev/tcp/10.99.0.2/8080) 2>/dev/null; do
  tries=$((tries + 1)); [ $tries -lt 600 ] || { echo "serve never listened"; cat "$WORK/serve.log"; exit 1; }
  kill -0 $serve || { echo "serve exited"; cat "$WORK/serve.log"; exit 1; }
  sleep 0.05
done
for stage in fetch files; do
  IGNITION_CONFIG_FILE="$CONFIG" "$IGNITION" -platform file -stage $stage -root /run/sysroot -log-to-stdout
done
"""


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """The lab cluster's tree, with a small stand-in image for each sysext in the assets (its sha512
    in the configs), and the configs by node."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("useradd") is None:
        pytest.skip("needs root, unshare and useradd (namespaces, chown); CI runs it as root")
    work = tmp_path_factory.mktemp("apply")
    cluster = load_cluster(LAB)[0]
    images = {use.file: f"sysext image {use.file}\n".encode() for node in cluster.nodes
              for use in node_sysexts(cluster, node)}
    (work / "assets" / ASSET_DIR).mkdir(parents=True)
    for name, data in images.items():
        (work / "assets" / ASSET_DIR / name).write_bytes(data)
    hashes = {name: "sha512-" + hashlib.sha512(data).hexdigest() for name, data in images.items()}
    secrets = pki.create_secrets(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    files = render_tree(cluster, secrets, Templates(None), Appliance(Path("/srv/out"), sysext_hashes=hashes))
    for path, (data, _) in files.items():
        if path.startswith("matchbox/"):
            (work / "data" / path.removeprefix("matchbox/")).parent.mkdir(parents=True, exist_ok=True)
            (work / "data" / path.removeprefix("matchbox/")).write_bytes(data)
    return work, {Path(p).stem: data for p, (data, _) in files.items() if p.endswith(".ign")}


def _apply(work: Path, name: str, config: bytes) -> tuple[Path, str]:
    root = work / f"root-{name}"
    (root / "etc").mkdir(parents=True)
    for file, text in ignition_fs.ACCOUNT_FILES.items():
        (root / "etc" / file).write_text(text)
        os.chmod(root / "etc" / file, 0o600 if "shadow" in file else 0o644)
    (root / "home/core").mkdir(parents=True)
    os.chown(root / "home/core", ignition_fs.CORE_UID, ignition_fs.CORE_UID)
    (work / f"{name}.ign").write_bytes(config)
    env = {**os.environ, "WORK": str(work), "ROOT": str(root), "CONFIG": str(work / f"{name}.ign"),
           "IGNITION": str(ignition_dir() / "ignition"), "PY": sys.executable}
    run = subprocess.run(["unshare", "--net", "--mount", "bash", "-c", SCRIPT], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "Ignition finished successfully" in run.stdout
    return root, run.stdout


def _assert_applied(root: Path, config: dict, images: Path) -> None:
    want = ignition_fs.expected(config, lambda url: (images / url.rsplit("/", 1)[1]).read_bytes())
    assert len(want) >= 4, want  # the configs write files and keys at least: an empty walk proves nothing
    assert ignition_fs.observe(root, want) == want
    preset = root / ignition_fs.PRESET.lstrip("/")
    assert ignition_fs.preset_units(preset.read_text() if preset.exists() else "") == ignition_fs.enabled(config)


def test_install_config_of_the_first_controller(rendered):
    work, configs = rendered
    root, _ = _apply(work, "cp-1-install", configs["cp-1-install"])
    config = json.loads(configs["cp-1-install"])
    _assert_applied(root, config, work / "assets" / ASSET_DIR)
    install = root / "opt/bootstrap-node/install.sh"
    assert install.stat().st_mode & 0o111 and install.read_bytes().startswith(b"#!/bin/bash")


def test_final_config_of_a_worker_with_sysexts(rendered):
    work, configs = rendered
    root, log = _apply(work, "worker-1", configs["worker-1"])
    config = json.loads(configs["worker-1"])
    _assert_applied(root, config, work / "assets" / ASSET_DIR)
    links = {p.name: os.readlink(p) for p in (root / "etc/extensions").iterdir()}
    for name in ("kubernetes.raw", "containerd.raw"):  # each resolves to the fetched, hash-checked image
        assert (root / links.pop(name).lstrip("/")).read_bytes().startswith(b"sysext image ")
    assert set(links.values()) == {"/dev/null"}  # Flatcar's own extension a bakery one replaces, disabled
    assert (root / "etc/hostname").read_text().strip() == "worker-1"
    assert "http://10.99.0.2:8080/assets/sysext/" in log  # fetched from the appliance, not a file
