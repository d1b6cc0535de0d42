"""Day 2 through the real API server: `wait` records that the cluster exists; from then on `generate
--server` renders the first controller as a joining one, mints a bootstrap token Secret for each
node about to (re)install, re-creates kubeadm-certs for a controller (owned by a token Secret whose
uid the real server assigned), and leaves the configs of installed nodes byte-identical when the
cluster grows. The Secrets are read back from the real server; what was written, from its audit log.
(That real kubeadm accepts those Secrets: test_day2_real.py.)"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typer.testing import CliRunner

from app import pki
from app.cli import app
from app.cluster_record import CLUSTER_RECORD, JOIN_TOKENS
from app.events import Event, append_event
from app.wait import kube
from tests.support.day2 import (
    CA_FILES,
    EXAMPLE_NODES,
    TOKEN_FIELDS,
    WORKER_3,
    config_with,
    exists,
    final,
    generate,
    installed,
    kubeadm,
    secret_data,
    tree,
)
from tests.support.gate import run_wait
from tests.support.paths import EXAMPLE

NAMES = [n["name"] for n in EXAMPLE_NODES]
SECRETS = "/api/v1/namespaces/kube-system/secrets"


def secrets(control_plane, output: Path) -> dict[str, dict]:
    api = kube.api_client(output / "credentials" / "admin.kubeconfig", control_plane.server)
    return {s["metadata"]["name"]: s for s in kube.get(api, SECRETS)["items"]}


def token_secrets(found: dict[str, dict]) -> dict[str, dict[str, str]]:
    return {name: {k: v.decode() for k, v in secret_data(body).items()}
            for name, body in found.items() if body.get("type") == "bootstrap.kubernetes.io/token"}


def generate_on(control_plane, output: Path, config: Path) -> tuple[object, dict[str, dict], list]:
    """`generate --server` on the real API: its result, the token Secrets it added, what it wrote."""
    before = set(token_secrets(secrets(control_plane, output)))
    mark = control_plane.audit.mark()
    result = generate(output, config, "--server", control_plane.server)
    writes = [r for r in control_plane.audit.since(mark) if r.wrote]
    tokens = {k: v for k, v in token_secrets(secrets(control_plane, output)).items() if k not in before}
    return result, tokens, writes


@pytest.fixture
def output(output: Path) -> Path:
    """The control plane's tree, copied and generated once more in place: its dnsmasq.conf names this
    path, so a later generate changes only what the test is about."""
    generate(output, EXAMPLE)
    return output


@pytest.fixture
def running(control_plane, output, tmp_path) -> Path:
    """cp-1, worker-1 and worker-2 of the control plane's own tree, recorded as an existing cluster
    and installed; their Nodes Ready: the cluster.yaml."""
    three = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"])
    generate(output, three)
    exists(output)
    installed(output, three)
    control_plane.register({"cp-1": True, "worker-1": True, "worker-2": True, "worker-3": None})
    return three


def test_wait_records_the_cluster_and_generate_then_renders_the_first_controller_as_a_join(control_plane, output):
    assert kubeadm(output, "cp-1")[0]["kind"] == "InitConfiguration"
    control_plane.register({n: True for n in NAMES})
    result = run_wait(output, control_plane.server)
    assert result.exit_code == 0, result.output
    assert "run `bootstrap-node generate` once more" in result.output
    record = json.loads((output / CLUSTER_RECORD).read_text())
    assert record["ca"] == pki.ca_pin((output / "credentials" / "ca.crt").read_bytes())
    assert (output / CLUSTER_RECORD).stat().st_mode & 0o777 == 0o600
    installed(output, EXAMPLE)
    before = tree(output)
    result, tokens, writes = generate_on(control_plane, output, EXAMPLE)
    assert "the cluster exists" in result.output
    assert [d["kind"] for d in kubeadm(output, "cp-1")] == ["JoinConfiguration"]
    after = tree(output)
    assert {k for k in after if after[k] != before.get(k)} == {"matchbox/ignition/cp-1.ign"}
    assert not tokens and not writes, "installed nodes need no new token"
    assert (output / CLUSTER_RECORD).exists(), "a re-render keeps the record (it is not generate's file)"
    result = run_wait(output, control_plane.server)
    assert result.exit_code == 0 and "once more" not in result.output, "a second wait asks for nothing"


def test_reinstalled_first_controller_joins_with_a_fresh_token_and_kubeadm_certs(control_plane, output):
    exists(output)
    installed(output, EXAMPLE)
    control_plane.register({n: True for n in NAMES})
    result = CliRunner().invoke(app, ["--config", str(EXAMPLE), "--output", str(output), "reinstall", "cp-1"])
    assert result.exit_code == 0, result.output
    creds = output / "credentials"
    result, tokens, _ = generate_on(control_plane, output, EXAMPLE)
    stored = secrets(control_plane, output)
    certs = stored["kubeadm-certs"]
    assert "fresh join tokens for cp-1" in result.output
    config = kubeadm(output, "cp-1")
    assert [d["kind"] for d in config] == ["JoinConfiguration"] and "controlPlane" in config[0]
    token = config[0]["discovery"]["bootstrapToken"]["token"]
    token_id, token_secret = token.split(".")
    join = tokens[f"bootstrap-token-{token_id}"]
    assert join["token-secret"] == token_secret and join["auth-extra-groups"] == \
        "system:bootstrappers:kubeadm:default-node-token"
    assert join["usage-bootstrap-authentication"] == join["usage-bootstrap-signing"] == "true"
    expires = dt.datetime.fromisoformat(join["expiration"].replace("Z", "+00:00"))
    assert dt.timedelta(hours=1) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=2)
    # kubeadm-certs: every CA file, decryptable with a certificate key of this upload's own (nonce
    # first; the first install's key decrypts none), owned by a token that authenticates nothing.
    first_key = (creds / "certificate-key").read_text().strip()
    new_key = config[0]["controlPlane"]["certificateKey"]
    assert len(new_key) == 64 and new_key != first_key
    key = bytes.fromhex(new_key)
    data = secret_data(certs)
    assert set(data) == set(CA_FILES)
    for name, file in CA_FILES.items():
        assert AESGCM(key).decrypt(data[name][:12], data[name][12:], None) == (creds / file).read_bytes(), name
    with pytest.raises(InvalidTag):
        AESGCM(bytes.fromhex(first_key)).decrypt(data["ca.key"][:12], data["ca.key"][12:], None)
    # Only the joining controller's config carries the new key.
    assert [p for p, d in final(output, "cp-1").items() if new_key.encode() in d] == ["/etc/kubernetes/kubeadm.yaml"]
    for node in NAMES:
        if node != "cp-1":
            assert not [path for path, data in final(output, node).items() if new_key.encode() in data]
    # The owner is the uid the real server gave the lifetime token's Secret.
    (owner,) = certs["metadata"]["ownerReferences"]
    lifetime = tokens[owner["name"]]
    assert owner["kind"] == "Secret" and owner["controller"] is True
    assert owner["uid"] == stored[owner["name"]]["metadata"]["uid"]
    assert "usage-bootstrap-authentication" not in lifetime and "auth-extra-groups" not in lifetime
    api = kube.api_client(creds / "admin.kubeconfig", control_plane.server)
    role = kube.get(api, "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/kubeadm:kubeadm-certs")
    assert role["rules"][0]["resourceNames"] == ["kubeadm-certs"]
    binding = kube.get(api, "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/"
                            "kubeadm:kubeadm-certs")
    assert binding["subjects"][0]["name"] == "system:bootstrappers:kubeadm:default-node-token"
    # Only cp-1 got a token; the record under credentials/ is private and names it.
    assert set(tokens) == {f"bootstrap-token-{token_id}", owner["name"]}
    stored_tokens = json.loads((output / JOIN_TOKENS).read_text())
    assert set(stored_tokens["nodes"]) == {"cp-1"} and stored_tokens["nodes"]["cp-1"]["token"] == token
    assert stored_tokens["nodes"]["cp-1"]["certificate_key"] == new_key
    assert (output / JOIN_TOKENS).stat().st_mode & 0o777 == 0o600


def test_reinstalled_worker_gets_a_token_once_and_generate_again_reuses_it(control_plane, output):
    exists(output)
    installed(output, EXAMPLE)
    control_plane.register({n: True for n in NAMES})
    append_event(output, Event("reinstall", mac="52:54:00:00:00:22", node="worker-2", source="cli"))
    _, tokens, writes = generate_on(control_plane, output, EXAMPLE)
    first = tree(output)
    (secret,) = tokens.values()
    assert set(secret) == TOKEN_FIELDS
    carried = kubeadm(output, "worker-2")[0]["discovery"]["bootstrapToken"]["token"]
    assert carried == f"{secret['token-id']}.{secret['token-secret']}"
    assert [(w.verb, w.path) for w in writes] == [("create", SECRETS)], "a worker needs no kubeadm-certs"
    _, tokens, writes = generate_on(control_plane, output, EXAMPLE)
    assert not tokens and not writes, "a token with most of its life left is reused"
    assert tree(output) == first


def test_growth_of_a_running_cluster_mints_a_token_for_the_new_node_only(control_plane, output, running, tmp_path):
    four = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"], [WORKER_3])
    generate(output, running, "--server", "https://127.0.0.1:9")  # cp-1 becomes a join; nothing to mint
    before = tree(output)
    result, tokens, _ = generate_on(control_plane, output, four)
    after = tree(output)
    assert "fresh join tokens for worker-3" in result.output
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"matchbox/ignition/worker-3.ign", "matchbox/ignition/worker-3-install.ign",
                       "matchbox/profiles/worker-3.json", "matchbox/profiles/worker-3-install.json",
                       "matchbox/groups/worker-3.json", "matchbox/groups/worker-3-install.json",
                       JOIN_TOKENS}
    (name, token), = tokens.items()
    assert set(token) == TOKEN_FIELDS
    carried = kubeadm(output, "worker-3")[0]["discovery"]["bootstrapToken"]["token"]
    assert carried == f"{token['token-id']}.{token['token-secret']}" and name == f"bootstrap-token-{token['token-id']}"
    expires = dt.datetime.fromisoformat(token["expiration"].replace("Z", "+00:00"))
    assert dt.timedelta(hours=23) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=24)


def test_a_new_node_the_api_already_knows_is_left_alone(control_plane, output, tmp_path):
    """A fresh event log must not mint a token for every node: one registered with the API was
    installed before the log began."""
    three = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"])
    generate(output, three)
    exists(output)
    control_plane.register({"cp-1": True, "worker-1": True, "worker-2": None})
    result, tokens, _ = generate_on(control_plane, output, three)
    assert "fresh join tokens for worker-2" in result.output and len(tokens) == 1
