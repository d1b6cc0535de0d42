"""Running `wait`'s health gate (against a real API server's URL, or the stand-in for faults),
templates with add-ons, and reading the kubeconfig it writes."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import yaml
from cryptography import x509
from typer.testing import CliRunner

from app import pki
from app.cli import app
from tests.support.apiserver import StandInAPIServer, serving_cert
from tests.support.paths import EXAMPLE, REPO

NAMES = ["cp-1", "cp-2", "cp-3", "worker-1", "worker-2"]
ADDON = """apiVersion: v1
kind: Namespace
metadata: {name: kube-flannel}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: kube-flannel-ds, namespace: kube-flannel}
spec: {}
"""


FIXTURES = REPO / "tests" / "fixtures"


def make_templates(root: Path, addons: dict[str, str] | None = None) -> Path:
    """A --templates dir as a user (or the image) has it: the CNI manifest and add-ons."""
    (root / "cni").mkdir(parents=True, exist_ok=True)
    (root / "cni" / "flannel.yaml").write_text((FIXTURES / "kube-flannel.yml").read_text())
    (root / "addons").mkdir(exist_ok=True)
    for name, text in (addons or {}).items():
        (root / "addons" / name).write_text(text)
    return root


def api(output: Path, tmp_path: Path, nodes: list[str], ca: str = "ca", **kw) -> StandInAPIServer:
    """The stand-in (for faults only: tests/support/apiserver.py) with `nodes` Ready."""
    creds = output / "credentials"
    if ca == "ca":
        crt, key = serving_cert(creds / "ca.crt", creds / "ca.key", tmp_path)
    else:  # a server whose certificate comes from some other CA
        other = pki.create_secrets(dt.datetime.now(dt.UTC))
        (tmp_path / "other-ca.crt").write_bytes(other.ca_crt)
        (tmp_path / "other-ca.key").write_bytes(other.ca_key)
        crt, key = serving_cert(tmp_path / "other-ca.crt", tmp_path / "other-ca.key", tmp_path)
    return StandInAPIServer(client_ca=creds / "ca.crt", cert=crt, key=key, nodes=nodes, **kw)


def run_wait(output: Path, server: StandInAPIServer | str, templates: Path | None = None, *extra: str,
             config: Path = EXAMPLE):
    """`wait` against the stand-in or a real API server's URL. Its deadlines are long, so a loaded
    machine cannot turn a success into a timeout; a test of a timeout passes its own (the last wins)."""
    templates = templates or make_templates(output.parent / "default-templates")
    url = server if isinstance(server, str) else server.url
    args = ["--config", str(config), "--output", str(output), "--templates", str(templates),
            "wait", "--server", url, "--poll", "0.2", "--api-timeout", "90", "--nodes-timeout", "90", *extra]
    return CliRunner().invoke(app, args)


def user_cert(kubeconfig: Path) -> x509.Certificate:
    doc = yaml.safe_load(kubeconfig.read_text())
    return x509.load_pem_x509_certificate(base64.b64decode(doc["users"][0]["user"]["client-certificate-data"]))


def client_groups(kubeconfig: Path) -> list[str]:
    """The certificate's organizations: the groups the API server puts the user in."""
    return [a.value for a in user_cert(kubeconfig).subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)]
