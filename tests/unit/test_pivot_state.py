"""The state `pivot` moves (app/pivot/state.py) and `unpivot`'s export (app/pivot/unpivot.py): byte for
byte both ways, no admin credential in the cluster, and an export that is all there or not there."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from typer.testing import CliRunner

from app import pki
from app.cli import app
from app.cluster import load_cluster
from app.cluster_record import CLUSTER_RECORD, JOIN_TOKENS
from app.generations import MANIFEST
from app.pivot.state import (
    CREDENTIALS_SECRET,
    PATHS_ANNOTATION,
    State,
    StateError,
    read_state,
    state_from_objects,
    state_objects,
)
from app.pivot.unpivot import export
from tests.support.paths import EXAMPLE

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
TEMPLATES = {"addons/10-team.yaml": b"kind: Namespace\n", "cni/flannel.yaml": b"# mine\n", "logo.bin": b"\xff\x00\xfe"}


def write_credentials(out: Path) -> Path:
    """A fresh credentials/ as `generate` writes it (also for tests/unit/test_pivot_cli.py)."""
    for name, (data, mode) in pki.to_files(pki.create_secrets(NOW)).items():
        path = out / "credentials" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
    return out


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """An output directory as generate and wait leave it: the credentials, the record, join tokens."""
    return as_wait_leaves_it(write_credentials(tmp_path_factory.mktemp("state") / "output"))


def as_wait_leaves_it(out: Path) -> Path:
    """`out` with the cluster record and a join token, as `wait` and day-2 `generate` add them."""
    (out / CLUSTER_RECORD).write_text('{"ca": "sha256:ab", "server": "https://10.0.0.10:6443"}\n')
    (out / JOIN_TOKENS).write_text('{"worker-1": {"token": "abcdef.0123456789abcdef"}}\n')
    return out


def write_templates(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> Path:
    root = write_templates(tmp_path_factory.mktemp("templates"), TEMPLATES)
    (root / ".hidden").write_text("an editor's swap file")
    return root


def test_the_state_is_the_output_dirs_bytes_but_the_admin_credential(output, templates):
    state = read_state(output, templates)
    creds = output / "credentials"
    expected = {str(p.relative_to(creds)) for p in creds.rglob("*") if p.is_file()} - {"admin.crt", "admin.key",
                                                                                         "cluster.json"}
    assert set(state.credentials) == expected
    assert all(state.credentials[name] == (creds / name).read_bytes() for name in expected)
    assert state.record == (output / CLUSTER_RECORD).read_bytes()
    assert state.templates == TEMPLATES  # the hidden file is not a template


def test_objects_hold_the_bytes_and_give_them_back(output, templates):
    state = read_state(output, templates)
    secret, record, configmap = state_objects(state, "prov", "lab")
    assert secret["type"] == "Opaque" and secret["metadata"]["name"] == CREDENTIALS_SECRET
    assert base64.b64decode(secret["data"]["etcd-ca.key"]) == (output / "credentials/etcd/ca.key").read_bytes()
    assert "admin.key" not in secret["data"] and "admin.crt" not in secret["data"]
    assert configmap["binaryData"] == {"logo.bin": base64.b64encode(b"\xff\x00\xfe").decode()}
    assert json.loads(configmap["metadata"]["annotations"][PATHS_ANNOTATION])["addons_10-team.yaml"] == \
        "addons/10-team.yaml"
    assert state_from_objects(secret, record, configmap) == state


@pytest.mark.parametrize("missing", ["ca.key", "etcd/ca.crt", "bootstrap-token"])
def test_an_incomplete_credentials_dir_is_refused_naming_the_file(output, tmp_path, missing):
    copy = tmp_path / "out"
    for path in output.rglob("*"):
        if path.is_file() and str(path.relative_to(output / "credentials")) != missing:
            (copy / path.relative_to(output)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(output)).write_bytes(path.read_bytes())
    with pytest.raises(StateError, match=f"missing {missing}: run `generate` first"):
        read_state(copy, None)


def test_no_output_dir_is_a_clear_error(tmp_path):
    with pytest.raises(StateError, match="no such output directory"):
        read_state(tmp_path / "nope", None)


def test_templates_whose_keys_would_clash_are_refused(output):
    with pytest.raises(StateError, match="would share the ConfigMap key 'a_b.yaml'"):
        state_objects(State({}, None, {"a/b.yaml": b"1", "a_b.yaml": b"2"}), "prov", "lab")


def test_too_big_for_one_object_is_refused(output):
    with pytest.raises(StateError, match="at most ~1 MiB"):
        state_objects(State({}, None, {"huge.yaml": b"x" * (1 << 20)}), "prov", "lab")


@pytest.mark.parametrize("path", ["../escape.yaml", "/etc/passwd", "a/../../b"])
def test_a_template_path_that_leaves_the_directory_is_refused(output, templates, path):
    secret, record, configmap = state_objects(read_state(output, templates), "prov", "lab")
    configmap["metadata"]["annotations"][PATHS_ANNOTATION] = json.dumps({"logo.bin": path})
    with pytest.raises(StateError, match="leaves the templates directory"):
        state_from_objects(secret, record, configmap)


@pytest.mark.parametrize("annotation", ['["logo.bin"]', '{"logo.bin": 7}', '{"logo.bin": "a\\u0000b"}',
                                        '{"logo.bin": ""}', '{"logo.bin": "."}', '{"logo.bin": "x/"}'])
def test_an_edited_paths_annotation_is_a_clear_error(output, templates, annotation):
    """Whoever may edit the ConfigMap in the namespace writes this annotation: unpivot says what is wrong
    with it, never a traceback."""
    secret, record, configmap = state_objects(read_state(output, templates), "prov", "lab")
    configmap["metadata"]["annotations"][PATHS_ANNOTATION] = annotation
    with pytest.raises(StateError, match=PATHS_ANNOTATION):
        state_from_objects(secret, record, configmap)


def test_a_secret_with_missing_or_foreign_keys_is_refused(output):
    secret, record, configmap = state_objects(read_state(output, None), "prov", "lab")
    del secret["data"]["ca.key"]
    secret["data"]["extra"] = "eA=="
    with pytest.raises(StateError, match="missing ca.key; unknown keys extra"):
        state_from_objects(secret, record, configmap)


def exported(output, templates, target) -> Path:
    cluster, _ = load_cluster(EXAMPLE)
    export(cluster, read_state(output, templates), target, NOW)
    return target


def test_export_is_an_output_dir_generate_continues_from(output, templates, tmp_path):
    target = exported(output, templates, tmp_path / "back")
    cluster, _ = load_cluster(target / "cluster.yaml")
    assert cluster == load_cluster(EXAMPLE)[0]
    assert {str(p.relative_to(target / "templates")): p.read_bytes()
            for p in (target / "templates").rglob("*") if p.is_file()} == TEMPLATES
    creds = target / "credentials"
    for name in ("ca.key", "etcd/ca.key", "sa.key", "certificate-key", "join-tokens.json", "cluster.json"):
        assert (creds / name).read_bytes() == (output / "credentials" / name).read_bytes(), name
        assert (creds / name).stat().st_mode & 0o077 == 0, name  # secrets stay 0600
    # A fresh admin certificate, signed by the same CA, for system:masters.
    ca = x509.load_pem_x509_certificate((creds / "ca.crt").read_bytes())
    admin = x509.load_pem_x509_certificate((creds / "admin.crt").read_bytes())
    ca.public_key().verify(admin.signature, admin.tbs_certificate_bytes, padding.PKCS1v15(),
                           admin.signature_hash_algorithm)
    assert "O=system:masters" in admin.subject.rfc4514_string()
    assert admin.public_key().public_numbers() == serialization.load_pem_private_key(
        (creds / "admin.key").read_bytes(), None).public_key().public_numbers()
    # The record and join tokens are kept beside the generated tree, as wait leaves them.
    manifest = (target / ".generations" / "current" / MANIFEST).read_text().split()
    assert "credentials/join-tokens.json" not in manifest and "credentials/cluster.json" not in manifest
    before = {name: (creds / name).read_bytes() for name in ("ca.key", "join-tokens.json", "cluster.json")}
    result = CliRunner().invoke(app, ["--config", str(target / "cluster.yaml"), "--output", str(target),
                                      "--templates", str(target / "templates"), "generate", "--assets", "/nonexistent",
                                      "--ipxe-dir", "/nonexistent"])
    assert result.exit_code == 0, result.output
    assert "created new secrets" not in result.output
    assert {name: (creds / name).read_bytes() for name in before} == before


def test_export_refuses_a_non_empty_target_and_changes_nothing(output, templates, tmp_path):
    target = tmp_path / "old"
    target.mkdir()
    (target / "cluster.yaml").write_text("old\n")
    with pytest.raises(StateError, match="exists and is not empty"):
        exported(output, templates, target)
    assert [p.name for p in target.iterdir()] == ["cluster.yaml"] and (target / "cluster.yaml").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]  # no staging left behind


def test_export_into_an_empty_directory_replaces_it(output, templates, tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    assert (exported(output, templates, target) / "cluster.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_a_failed_export_leaves_no_trace(output, templates, tmp_path, monkeypatch):
    """A crash before the rename (here: the rename itself fails) leaves neither DIR nor the staging."""
    rename = os.rename

    def refuse(src, dst):
        if Path(dst) == tmp_path / "back":
            raise OSError(28, "No space left on device")
        rename(src, dst)
    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(StateError, match="No space left on device"):
        exported(output, templates, tmp_path / "back")
    assert list(tmp_path.iterdir()) == []


def test_export_never_writes_through_a_planted_staging_path(output, templates, tmp_path):
    """DIR's parent may be shared (/tmp): another user who plants a symlink where the staging directory
    goes (its name was predictable) must not receive the CA keys, nor have DIR become that link."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    parent = tmp_path / "shared"
    parent.mkdir()
    (parent / f".back.unpivot-{os.getpid()}").symlink_to(theirs)
    target = exported(output, templates, parent / "back")
    assert list(theirs.iterdir()) == []
    assert not target.is_symlink() and (target / "credentials" / "ca.key").stat().st_mode & 0o077 == 0
    assert target.stat().st_mode & 0o777 == 0o711  # as generate makes it: dnsmasq passes through to tftp/
