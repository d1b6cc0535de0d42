"""Cluster mode's watch of the ProvisioningCluster and the templates ConfigMap (which events are
changes), the templates swap a render takes them with, the credentials drift it reports, and the
pod's ServiceAccount files read from an overridable directory. The watch itself runs against the
real API server in tests/k8s/test_cluster_mode_in_pod_real.py."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from app import pki
from app.cli.cluster_mode import stale_credentials, take_templates
from app.cluster import load_cluster
from app.cluster_record import JOIN_TOKENS
from app.generate import generate
from app.pivot.state import ADMIN_FILES, State
from app.pivot.unpivot import export
from app.serve.cluster import in_cluster
from app.serve.cluster.lease_api import connect
from app.serve.cluster.settings_watch import Versions
from app.serve.errors import ServeError
from tests.support.paths import EXAMPLE


def event(kind: str, name: str = "bootstrap-node-templates", version: str = "5") -> dict:
    return {"type": kind, "object": {"metadata": {"name": name, "resourceVersion": version}}}


def test_only_a_new_version_a_new_object_or_a_deletion_is_a_change():
    versions = Versions()
    versions.seen, versions.version = {"bootstrap-node-templates": "5"}, "5"
    assert not versions.take(event("ADDED"))  # the server's replay of what the first render took
    assert versions.take(event("MODIFIED", version="6"))
    assert not versions.take(event("MODIFIED", version="6"))
    assert not versions.take(event("BOOKMARK", name="", version="9")) and versions.version == "9"
    assert versions.take(event("ADDED", name="other", version="10"))
    assert versions.take(event("DELETED", name="other", version="11"))
    assert not versions.take(event("DELETED", name="never-seen", version="12"))
    assert not versions.take({"type": "ERROR", "object": {"code": 410}}) and versions.version == ""


def test_templates_are_swapped_in_whole_and_only_when_they_changed(tmp_path):
    directory = tmp_path / "templates"
    assert take_templates(directory, {"profiles/install.json.tmpl": b"one", "addons/a.yaml": b"a"})
    assert not take_templates(directory, {"profiles/install.json.tmpl": b"one", "addons/a.yaml": b"a"})
    assert take_templates(directory, {"profiles/install.json.tmpl": b"two"})
    files = {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    assert files == {"profiles/install.json.tmpl": b"two"}  # the removed one is gone too
    assert [p.name for p in tmp_path.iterdir()] == ["templates"]  # no staging left beside it


def test_a_changed_credentials_secret_is_named_join_tokens_aside(tmp_path):
    """Not after generate either: it writes the credentials back byte for byte, so an unchanged Secret
    is never reported."""
    now = dt.datetime.now(dt.UTC)
    files = {name: data for name, (data, _) in pki.to_files(pki.create_secrets(now)).items()
             if name not in ADMIN_FILES}
    state = State(files)
    cluster, _ = load_cluster(EXAMPLE)
    export(cluster, state, tmp_path / "tree", now)
    generate(cluster, tmp_path / "tree", None, assets=tmp_path / "none", ipxe_dir=tmp_path / "none")
    assert stale_credentials(tmp_path / "tree", state) == []
    changed = State({**state.credentials, "ca.crt": b"another CA", JOIN_TOKENS.split("/", 1)[1]: b"{}"})
    assert stale_credentials(tmp_path / "tree", changed) == ["ca.crt"]


def test_the_pods_service_account_files_are_read_from_the_directory_the_variable_names(tmp_path, monkeypatch):
    (tmp_path / "token").write_text("the-token")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "namespace").write_text("in-pod")
    monkeypatch.setenv(in_cluster.DIR_ENV, str(tmp_path))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.10")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    api = connect(None)
    assert api.configuration.host == "https://10.0.0.10:6443"
    assert api.configuration.ssl_ca_cert == str(tmp_path / "ca.crt")
    assert api.configuration.api_key["BearerToken"] == "bearer the-token"
    assert in_cluster.namespace_file().read_text() == "in-pod"
    os.remove(tmp_path / "token")
    with pytest.raises(ServeError, match="in-cluster config.*token file does not exist"):
        connect(None)


def test_without_the_variable_it_is_the_kubelets_directory(monkeypatch):
    monkeypatch.delenv(in_cluster.DIR_ENV, raising=False)
    assert in_cluster.namespace_file() == in_cluster.DEFAULT_DIR / "namespace"
