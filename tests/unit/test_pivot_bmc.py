"""app/pivot/bmc.py without a server (the API's answers scripted): which Secrets the Machines name,
what is read from one, and the files cluster mode writes; and app/cluster/machines.py naming those
files. tests/k8s/test_pivot_bmc_real.py reads real Secrets with the ServiceAccount's token."""

from __future__ import annotations

import base64
import json

import pytest

from app.cluster.machines import MachineError, node_from_machine
from app.pivot import bmc
from app.wait import kube


def machine(name: str, **bmc_fields) -> dict:
    spec = {"mac": "52:54:00:00:00:99", "role": "worker", "addresses": ["10.0.0.99"],
            "installDisk": "/dev/disk/by-id/virtio-x", "power": "redfish",
            "bmc": {"address": "http://10.0.1.9:8000", "username": "root", **bmc_fields}}
    return {"metadata": {"name": name}, "spec": spec}


def secret(**data: bytes) -> dict:
    return {"kind": "Secret", "data": {key: base64.b64encode(value).decode() for key, value in data.items()}}


def test_the_secrets_the_machines_name():
    machines = [machine("a", passwordSecret="bmc"), machine("b", passwordSecret="bmc"),
                machine("c", passwordSecret="other"), machine("d", passwordEnv="X"), {"metadata": {"name": "e"}}]
    assert bmc.named_secrets(machines) == {"bmc": ["a", "b"], "other": ["c"]}


@pytest.mark.parametrize("name, body, says", [
    ("bootstrap-node-credentials", secret(password=b"x"), "is the appliance's own state"),
    ("bmc", secret(username=b"root"), "has no 'password' key"),
    ("bmc", {"data": {"password": "not base64!"}}, "is not base64"),
])
def test_what_is_not_a_password_is_refused_naming_the_machine(name, body, says):
    with pytest.raises(MachineError, match=says) as caught:
        bmc.password_of(body, name, ["worker-9"])
    assert f"Machine worker-9: bmc.passwordSecret {name!r}" in str(caught.value)


@pytest.fixture
def secrets(monkeypatch):
    """The namespace's Secrets, served by name; a missing one is the API's 404."""
    held: dict[str, dict] = {}

    def get(api, path):
        name = path.rsplit("/", 1)[1]
        if name not in held:
            raise kube.Fatal(f"GET {path}: HTTP 404: secrets {name!r} not found")
        return held[name]
    monkeypatch.setattr(kube, "get", get)
    return held


def test_each_password_is_written_0600_in_a_0700_directory_and_stale_ones_go(secrets, tmp_path):
    secrets.update({"bmc-a": secret(password=b"first\n"), "bmc-b": secret(password=b"second")})
    where = tmp_path / "tree.bmc-passwords"
    files = bmc.write_passwords(None, "prov", [machine("a", passwordSecret="bmc-a"),
                                               machine("b", passwordSecret="bmc-b")], where)
    assert files == {"bmc-a": str(where / "bmc-a"), "bmc-b": str(where / "bmc-b")}
    assert (where / "bmc-a").read_bytes() == b"first\n" and (where / "bmc-b").read_bytes() == b"second"
    assert where.stat().st_mode & 0o777 == 0o700
    assert all((where / n).stat().st_mode & 0o777 == 0o600 for n in files)
    again = bmc.write_passwords(None, "prov", [machine("a", passwordSecret="bmc-a")], where)
    assert set(again) == {"bmc-a"} and sorted(p.name for p in where.iterdir()) == ["bmc-a"]


@pytest.mark.parametrize("name, says", [
    ("missing", "bmc.passwordSecret 'missing': GET /api/v1/namespaces/prov/secrets/missing: HTTP 404"),
    ("../x", "is not a Secret name"),
    (".hidden", "is not a Secret name"),
])
def test_a_secret_that_cannot_be_read_is_an_error_and_writes_nothing(secrets, tmp_path, name, says):
    with pytest.raises(MachineError, match="Machine a: ") as caught:
        bmc.write_passwords(None, "prov", [machine("a", passwordSecret=name)], tmp_path / "p")
    assert says in str(caught.value)
    assert not (tmp_path / "p").exists()


def test_a_machine_names_the_file_cluster_mode_wrote_for_its_secret():
    node = node_from_machine(machine("worker-9", passwordSecret="bmc-a"), {"bmc-a": "/output/tree.bmc/bmc-a"})
    assert node.bmc.password_file == "/output/tree.bmc/bmc-a" and node.bmc.password_env is None


def test_without_that_file_a_password_in_a_secret_is_refused():
    with pytest.raises(MachineError, match="its BMC password is in Secret 'bmc-a'"):
        node_from_machine(machine("worker-9", passwordSecret="bmc-a"), {"other": "/x"})


@pytest.mark.parametrize("source", ["passwordFile", "passwordEnv"])
def test_cluster_mode_sets_aside_a_bmc_password_from_the_pods_files_or_environment(source):
    """Inside the pod a file or variable is the appliance's own (its CA keys, its token): not read. The
    Machine is still rendered, without its BMC, and the reason is kept for its status.lastError."""
    local = machine("worker-9", **{source: "/output/tree/credentials/bootstrap-token"})
    fine = machine("worker-8", passwordSecret="bmc")
    fine["spec"]["mac"] = "52:54:00:00:00:98"
    kept, refused = bmc.set_aside_local_sources([local, fine])
    assert kept[1] is fine and "bmc" in local["spec"]  # the others untouched; the objects given not changed
    assert "bmc" not in kept[0]["spec"] and kept[0]["spec"]["power"] == "manual"
    assert set(refused) == {"52:54:00:00:00:99"}
    assert f"bmc.{source} names" in refused["52:54:00:00:00:99"] and "bmc.passwordSecret" in refused["52:54:00:00:00:99"]
    node = node_from_machine(kept[0], {})
    assert node.bmc is None and node.power == "manual" and node.name == "worker-9"


def test_pivot_tells_how_to_move_a_file_or_variable_password_into_a_secret():
    made = [machine("worker-9", passwordFile="/etc/bmc/worker-9"), machine("worker-8", passwordEnv="BMC_PW"),
            machine("worker-7", passwordSecret="bmc")]
    for m in made:
        m["metadata"]["namespace"] = "prov"
    file_hint, env_hint = bmc.secret_hints(made)
    assert file_hint.startswith("Machine worker-9: its BMC password is a file here")
    assert "kubectl -n prov create secret generic bmc-worker-9 --from-file=password=/etc/bmc/worker-9" in file_hint
    assert 'create secret generic bmc-worker-8 --from-literal=password="$BMC_PW"' in env_hint
    patch = json.loads(env_hint.rsplit(" -p ", 1)[1].strip("'"))
    merged = {k: v for k, v in {**made[1]["spec"]["bmc"], **patch["spec"]["bmc"]}.items() if v is not None}
    assert merged == {"address": "http://10.0.1.9:8000", "username": "root", "passwordSecret": "bmc-worker-8"}
