"""Day 2 against the TLS API-server stand-in: `wait` records that the cluster exists; from then on
`generate` renders the first controller as a joining one, mints a bootstrap token Secret through the
API for each node about to (re)install, re-creates kubeadm-certs for a controller, and leaves the
configs of installed nodes byte-identical when the cluster grows."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from typer.testing import CliRunner

from app import pki
from app.cli import app
from app.cluster_record import CLUSTER_RECORD, JOIN_TOKENS, record_cluster
from app.events import Event, append_event
from tests.conftest import EXAMPLE
from tests.integration.test_wait import api, run_wait
from tests.unit.test_generate import decode

runner = CliRunner()
EXAMPLE_NODES = yaml.safe_load(EXAMPLE.read_text())["nodes"]
TOKEN_FIELDS = {"token-id", "token-secret", "expiration", "description", "usage-bootstrap-authentication",
                "usage-bootstrap-signing", "auth-extra-groups"}
CA_FILES = {"ca.crt": "ca.crt", "ca.key": "ca.key", "sa.pub": "sa.pub", "sa.key": "sa.key",
            "front-proxy-ca.crt": "front-proxy-ca.crt", "front-proxy-ca.key": "front-proxy-ca.key",
            "etcd-ca.crt": "etcd/ca.crt", "etcd-ca.key": "etcd/ca.key"}


def config_with(tmp_path: Path, names: list[str], extra: list[dict] = ()) -> Path:
    """cluster.yaml.example with only the named nodes (in its order), plus `extra` ones."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["nodes"] = [n for n in EXAMPLE_NODES if n["name"] in names] + list(extra)
    path = tmp_path / f"cluster-{len(data['nodes'])}-{'-'.join(n['name'] for n in data['nodes'])}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


WORKER_3 = {"name": "worker-3", "role": "worker", "mac": "52:54:00:00:00:23", "ip": "10.0.0.23",
            "install_disk": "/dev/disk/by-id/wwn-0x5000c500a0b1c223"}


def generate(output: Path, config: Path, *extra: str):
    result = runner.invoke(app, ["--config", str(config), "--output", str(output), "--templates", "/nonexistent",
                                 "generate", "--assets", "/nonexistent", "--ipxe-dir", "/nonexistent", *extra])
    assert result.exit_code == 0, result.output
    return result


def installed(output: Path, config: Path) -> None:
    """The event log of a cluster whose nodes all installed (as their callbacks report it)."""
    for node in yaml.safe_load(config.read_text())["nodes"]:
        append_event(output, Event("installed", mac=node["mac"], node=node["name"], source="node"))


def exists(output: Path) -> None:
    """What `wait` records on first seeing the API (tested through `wait` below)."""
    ca_pin = pki.ca_pin((output / "credentials" / "ca.crt").read_bytes())
    record_cluster(output, ca_pin, "https://10.0.0.10:6443", dt.datetime.now(dt.UTC))


def running_cluster(tmp_path: Path, installed_too: bool = False) -> tuple[Path, Path]:
    """cp-1, worker-1 and worker-2 generated, recorded as an existing cluster, and (`installed_too`)
    every node installed: the output dir and its cluster.yaml."""
    three = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"])
    output = tmp_path / "output"
    generate(output, three)
    exists(output)
    if installed_too:
        installed(output, three)
    return output, three


def final(output: Path, node: str) -> dict[str, bytes]:
    config = json.loads((output / "matchbox" / "ignition" / f"{node}.ign").read_text())
    return {f["path"]: decode(f["contents"]) for f in config["storage"]["files"]
            if f.get("contents", {}).get("source", "").startswith("data:")}


def kubeadm(output: Path, node: str) -> list[dict]:
    return list(yaml.safe_load_all(final(output, node)["/etc/kubernetes/kubeadm.yaml"]))


def tree(output: Path) -> dict[str, bytes]:
    """The visible tree (through generate's links), without the event log."""
    found = {}
    for top in ("credentials", "matchbox", "tftp", "dnsmasq.conf"):
        for path in [output / top] if (output / top).is_file() else (output / top).rglob("*"):
            for sub in [path] if not path.is_dir() else []:
                found[str(sub.relative_to(output))] = sub.read_bytes()
    return found


def secret_data(secret: dict) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in secret["data"].items()}


def token_secrets(server) -> dict[str, dict[str, str]]:
    return {name: {k: v.decode() for k, v in secret_data(body).items()}
            for name, body in server.secrets().items() if body.get("type") == "bootstrap.kubernetes.io/token"}


@pytest.fixture
def output(output: Path) -> Path:
    """The shared generated tree, copied (its links became directories) and generated once more in
    place: links again, and a dnsmasq.conf naming this path."""
    generate(output, EXAMPLE)
    return output


# -- `wait` records the cluster ----------------------------------------------------------------------
def test_wait_records_the_cluster_and_generate_then_renders_the_first_controller_as_a_join(output, tmp_path):
    assert kubeadm(output, "cp-1")[0]["kind"] == "InitConfiguration"
    names = [n["name"] for n in EXAMPLE_NODES]
    with api(output, tmp_path, {n: 0.0 for n in names}) as server:
        result = run_wait(output, server)
        assert result.exit_code == 0, result.output
        assert "run `bootstrap-node generate` once more" in result.output
        record = json.loads((output / CLUSTER_RECORD).read_text())
        assert record["ca"] == pki.ca_pin((output / "credentials" / "ca.crt").read_bytes())
        assert (output / CLUSTER_RECORD).stat().st_mode & 0o777 == 0o600
        installed(output, EXAMPLE)
        before = tree(output)
        result = generate(output, EXAMPLE, "--server", server.url)
    assert "the cluster exists" in result.output
    assert [d["kind"] for d in kubeadm(output, "cp-1")] == ["JoinConfiguration"]
    after = tree(output)
    assert {k for k in after if after[k] != before.get(k)} == {"matchbox/ignition/cp-1.ign"}
    assert not token_secrets(server), "installed nodes need no new token"
    assert (output / CLUSTER_RECORD).exists(), "a re-render keeps the record (it is not generate's file)"


def test_a_second_wait_does_not_ask_for_another_generate(output, tmp_path):
    exists(output)
    with api(output, tmp_path, {n["name"]: 0.0 for n in EXAMPLE_NODES}) as server:
        result = run_wait(output, server)
    assert result.exit_code == 0 and "once more" not in result.output


# -- reinstalling the first controller ----------------------------------------------------------------
def test_reinstalled_first_controller_joins_with_a_fresh_token_and_kubeadm_certs(output, tmp_path):
    exists(output)
    installed(output, EXAMPLE)
    result = runner.invoke(app, ["--config", str(EXAMPLE), "--output", str(output), "reinstall", "cp-1"])
    assert result.exit_code == 0, result.output
    creds = output / "credentials"
    with api(output, tmp_path, {n["name"]: 0.0 for n in EXAMPLE_NODES}) as server:
        result = generate(output, EXAMPLE, "--server", server.url)
        tokens = token_secrets(server)
        certs = server.secrets()["kubeadm-certs"]
        objects = dict(server.objects)
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
    for node in EXAMPLE_NODES:
        if node["name"] != "cp-1":
            assert not [path for path, data in final(output, node["name"]).items() if new_key.encode() in data]
    (owner,) = certs["metadata"]["ownerReferences"]
    lifetime = tokens[owner["name"]]
    assert owner["kind"] == "Secret" and owner["controller"] is True
    assert owner["uid"] == server.secrets()[owner["name"]]["metadata"]["uid"]
    assert "usage-bootstrap-authentication" not in lifetime and "auth-extra-groups" not in lifetime
    role = objects["/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles/kubeadm:kubeadm-certs"]
    assert role["rules"][0]["resourceNames"] == ["kubeadm-certs"]
    binding = objects["/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/kubeadm:kubeadm-certs"]
    assert binding["subjects"][0]["name"] == "system:bootstrappers:kubeadm:default-node-token"
    # Only cp-1 got a token; the record under credentials/ is private and names it.
    assert set(tokens) == {f"bootstrap-token-{token_id}", owner["name"]}
    stored = json.loads((output / JOIN_TOKENS).read_text())
    assert set(stored["nodes"]) == {"cp-1"} and stored["nodes"]["cp-1"]["token"] == token
    assert stored["nodes"]["cp-1"]["certificate_key"] == new_key
    assert (output / JOIN_TOKENS).stat().st_mode & 0o777 == 0o600


def test_reinstalled_worker_gets_a_token_once_and_generate_again_reuses_it(output, tmp_path):
    exists(output)
    installed(output, EXAMPLE)
    append_event(output, Event("reinstall", mac="52:54:00:00:00:22", node="worker-2", source="cli"))
    with api(output, tmp_path, {n["name"]: 0.0 for n in EXAMPLE_NODES}) as server:
        generate(output, EXAMPLE, "--server", server.url)
        first = tree(output)
        writes = list(server.writes)
        (secret,) = token_secrets(server).values()
        assert set(secret) == TOKEN_FIELDS
        carried = kubeadm(output, "worker-2")[0]["discovery"]["bootstrapToken"]["token"]
        assert carried == f"{secret['token-id']}.{secret['token-secret']}"
        generate(output, EXAMPLE, "--server", server.url)
        assert server.writes == writes, "a token with most of its life left is reused"
    assert tree(output) == first
    assert len(writes) == 1 and "kubeadm-certs" not in str(writes), "a worker needs no kubeadm-certs"


# -- growing the cluster ------------------------------------------------------------------------------
def test_growth_without_a_cluster_adds_only_the_new_nodes_files(tmp_path):
    three = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"])
    four = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"], [WORKER_3])
    output = tmp_path / "output"
    generate(output, three)
    before = tree(output)
    generate(output, four)
    after = tree(output)
    assert all(after[k] == v for k, v in before.items()), [k for k, v in before.items() if after.get(k) != v]
    assert sorted(set(after) - set(before)) == sorted(
        f"matchbox/{kind}/{name}.{ext}" for name in ("worker-3", "worker-3-install")
        for kind, ext in (("ignition", "ign"), ("profiles", "json"), ("groups", "json")))


def test_growth_of_a_running_cluster_mints_a_token_for_the_new_node_only(tmp_path):
    output, three = running_cluster(tmp_path, installed_too=True)
    four = config_with(tmp_path, ["cp-1", "worker-1", "worker-2"], [WORKER_3])
    generate(output, three, "--server", "https://127.0.0.1:9")  # cp-1 becomes a join; nothing to mint
    before = tree(output)
    with api(output, tmp_path, {"cp-1": 0.0, "worker-1": 0.0, "worker-2": 0.0}) as server:
        result = generate(output, four, "--server", server.url)
        tokens = token_secrets(server)
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


def test_a_new_node_the_api_already_knows_is_left_alone(tmp_path):
    """A fresh event log must not mint a token for every node: one registered with the API was
    installed before the log began."""
    output, three = running_cluster(tmp_path)
    with api(output, tmp_path, {"cp-1": 0.0, "worker-1": 0.0}) as server:
        result = generate(output, three, "--server", server.url)
        tokens = token_secrets(server)
    assert "fresh join tokens for worker-2" in result.output and len(tokens) == 1


def test_an_unreachable_api_is_a_warning_naming_the_nodes_without_a_fresh_token(tmp_path):
    output, three = running_cluster(tmp_path, installed_too=True)
    append_event(output, Event("reinstall", mac="52:54:00:00:00:21", node="worker-1", source="cli"))
    result = generate(output, three, "--server", "https://127.0.0.1:9")
    assert "the cluster exists but its API did not answer" in result.output and "worker-1" in result.output
    warning = result.output.split("did not answer")[1]
    assert "worker-1 (the first install's token" in warning and "cp-1 (" not in warning and "worker-2 (" not in warning


def test_new_cluster_is_the_explicit_start_over(tmp_path):
    output, three = running_cluster(tmp_path, installed_too=True)
    generate(output, three, "--server", "https://127.0.0.1:9")
    assert kubeadm(output, "cp-1")[0]["kind"] == "JoinConfiguration"
    result = generate(output, three, "--new-cluster")
    assert "cp-1 will run kubeadm init" in result.output
    assert kubeadm(output, "cp-1")[0]["kind"] == "InitConfiguration"
    assert not (output / CLUSTER_RECORD).exists()


def test_rotated_secrets_mean_a_new_cluster(tmp_path):
    output, three = running_cluster(tmp_path)
    generate(output, three, "--rotate-secrets")
    assert kubeadm(output, "cp-1")[0]["kind"] == "InitConfiguration"


# -- arm64 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_binary", [False, True])
def test_arm64_nodes_need_an_arm64_ipxe_binary(tmp_path, with_binary):
    arm = {**WORKER_3, "arch": "arm64"}
    config = config_with(tmp_path, ["cp-1", "worker-1"], [arm])
    ipxe = tmp_path / "ipxe"
    ipxe.mkdir()
    for name in ("undionly.kpxe", "ipxe.efi"):
        (ipxe / name).write_bytes(b"x86")
    if with_binary:
        (ipxe / "snp-arm64.efi").write_bytes(b"arm64 ipxe")
    output = tmp_path / "output"
    result = runner.invoke(app, ["--config", str(config), "--output", str(output), "--templates", "/nonexistent",
                                 "generate", "--assets", "/nonexistent", "--ipxe-dir", str(ipxe)])
    if with_binary:
        assert result.exit_code == 0, result.output
        assert (output / "tftp" / "snp-arm64.efi").read_bytes() == b"arm64 ipxe"
    else:
        assert result.exit_code == 1
        assert "no snp-arm64.efi" in result.output and "worker-3" in result.output
        assert not output.exists() or not (output / "matchbox").exists()
