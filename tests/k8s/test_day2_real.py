"""Day 2 against real kubeadm: the bootstrap token Secret and the kubeadm-certs Secret that
app/wait/kubeadm_secrets.py mints through the API are what `kubeadm join phase control-plane-prepare
download-certs` needs: with the key of that upload, the minted token and our CA pin it writes the very
CA and service-account keys we hold; a wrong pin or an expired token fails as kubeadm says."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
import yaml

from app import pki
from app.wait import kube, kubeadm_secrets
from tests.support import k8s_builds
from tests.support.kubeadm_renders import VARIANTS, kubeadm_configs

DAY2 = next(v for v in VARIANTS if v.name == "day2")
DISCOVERY_TIMEOUT = "20s"  # discovery retries until then; the signer acts as a token appears


@pytest.fixture(scope="module")
def secrets(generated_k8s) -> pki.Secrets:
    return pki.from_files(lambda name: (generated_k8s / "credentials" / name).read_bytes())


@pytest.fixture(scope="module")
def api(control_plane, generated_k8s):
    return kube.api_client(generated_k8s / "credentials" / "admin.kubeconfig", control_plane.server)


def join_config(tmp_path: Path, secrets: pki.Secrets, token: str, certificate_key: str | None = None,
                node: str = "cp-2") -> str:
    """The JoinConfiguration our renderer gives `node` on day 2; only discovery's patience is shorter."""
    text = kubeadm_configs(tmp_path / "render", DAY2, k8s_builds.DEFAULT, secrets, token, certificate_key)[node]
    doc = yaml.safe_load(text)
    doc.setdefault("timeouts", {})["discovery"] = DISCOVERY_TIMEOUT
    return yaml.safe_dump(doc, sort_keys=False)


def download_certs(control_plane, root: Path, config: str) -> subprocess.CompletedProcess:
    (root / "etc" / "kubernetes").mkdir(parents=True)
    (root / "join.yaml").write_text(config)
    cmd = [str(control_plane.bin / "kubeadm"), "join", "phase", "control-plane-prepare", "download-certs",
           "--config", "/join.yaml", "--rootfs", str(root)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)  # in the namespace: see conftest


def test_download_certs_takes_what_our_day2_code_minted(control_plane, api, secrets, tmp_path):
    now = dt.datetime.now(dt.UTC)
    token, _ = kubeadm_secrets.mint_token(api, now, dt.timedelta(hours=1), "bootstrap-node: test join of cp-2")
    _, key = kubeadm_secrets.upload_certs(api, secrets, now, dt.timedelta(hours=1))
    # Each upload has a key of its own: the first install's key no longer opens kubeadm-certs.
    stale = download_certs(control_plane, tmp_path / "stale", join_config(tmp_path / "s", secrets, token.token))
    assert stale.returncode != 0 and "message authentication failed" in stale.stderr, stale.stderr[-2000:]
    root = tmp_path / "cp-2"
    run = download_certs(control_plane, root, join_config(tmp_path, secrets, token.token, key))
    assert run.returncode == 0, run.stderr[-4000:]
    pki_dir = root / "etc" / "kubernetes" / "pki"
    for name, field in kubeadm_secrets.CERT_FILES.items():
        assert (pki_dir / name).read_bytes().strip() == getattr(secrets, field).strip(), name


def test_a_wrong_ca_pin_is_refused(control_plane, api, secrets, tmp_path):
    token, _ = kubeadm_secrets.mint_token(api, dt.datetime.now(dt.UTC), dt.timedelta(hours=1), "bootstrap-node: wrong pin")
    other = pki.ca_pin(pki.create_secrets(dt.datetime.now(dt.UTC)).ca_crt)
    config = join_config(tmp_path, secrets, token.token).replace(pki.ca_pin(secrets.ca_crt), other)
    run = download_certs(control_plane, tmp_path / "root", config)
    assert run.returncode != 0
    assert "none of the public keys" in run.stderr and "are pinned" in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "root" / "etc" / "kubernetes" / "pki" / "ca.key").exists()


def test_an_expired_token_is_refused(control_plane, api, secrets, tmp_path):
    expired = pki.new_token()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    secret = kubeadm_secrets.token_secret(expired, past, "bootstrap-node: expired", joins=True)
    kube.create(api, kubeadm_secrets.SECRETS, secret)
    run = download_certs(control_plane, tmp_path / "root", join_config(tmp_path, secrets, expired))
    assert run.returncode != 0
    token_id = expired.split(".")[0]
    assert f'could not find a JWS signature in the cluster-info ConfigMap for token ID "{token_id}"' in run.stderr, \
        run.stderr[-2000:]
    assert not (tmp_path / "root" / "etc" / "kubernetes" / "pki" / "ca.key").exists()


def test_an_earlier_certificate_key_opens_no_later_upload(control_plane, api, secrets, tmp_path):
    """Each upload has a key of its own: the first install's key no longer decrypts kubeadm-certs."""
    now = dt.datetime.now(dt.UTC)
    token, _ = kubeadm_secrets.mint_token(api, now, dt.timedelta(hours=1), "bootstrap-node: old key")
    _, key = kubeadm_secrets.upload_certs(api, secrets, now, dt.timedelta(hours=1))
    assert key != secrets.certificate_key
    run = download_certs(control_plane, tmp_path / "root",
                         join_config(tmp_path, secrets, token.token, secrets.certificate_key))
    assert run.returncode != 0
    assert "error decoding secret data with provided key" in run.stderr, run.stderr[-2000:]
    assert not (tmp_path / "root" / "etc" / "kubernetes" / "pki" / "ca.key").exists()
