"""System extensions in the final Ignition (placement, hashes, per role/node), the sysupdate wiring
(only where systemd-sysupdate really reads it), and what `validate` says about `sysexts:`."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from app.cli import app
from app.cluster import check
from app.cluster.releases import DISK_IMAGE, PXE_FILES
from app.yaml_source import parse_source
from tests.conftest import EXAMPLE
from tests.unit.test_generate import NODES, files_of, ignition, run_generate

runner = CliRunner()
EXTRAS = """
sysexts:
  - {name: containerd, version: 2.0.4, roles: [worker]}
  - {name: mytools, version: "1.0", nodes: [worker-2]}
"""
IMAGES = {"kubernetes-v1.36.3-x86-64.raw": b"k8s image", "containerd-2.0.4-x86-64.raw": b"containerd image",
          "mytools-1.0-x86-64.raw": b"a user's own image"}


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(EXAMPLE.read_text() + extra)
    return path


def assets(tmp_path: Path, images: dict[str, bytes] = IMAGES, sums: list[str] | None = None) -> Path:
    """An assets directory beside the output, as run_generate passes it (`no-assets`)."""
    sysext = tmp_path / "no-assets" / "sysext"
    sysext.mkdir(parents=True)
    for name, data in images.items():
        (sysext / name).write_bytes(data)
    names = list(images) if sums is None else sums
    (sysext / "SHA256SUMS").write_text("".join(f"{'0' * 64}  {n}\n" for n in names))
    flatcar = sysext.parent / "flatcar" / yaml.safe_load(EXAMPLE.read_text())["cluster"]["flatcar_version"]
    flatcar.mkdir(parents=True)
    for name in (*PXE_FILES, DISK_IMAGE, f"{DISK_IMAGE}.sig"):
        (flatcar / name).write_bytes(b"stand-in")
    return sysext.parent


def sha512(data: bytes) -> str:
    return "sha512-" + hashlib.sha512(data).hexdigest()


def placed(config: dict) -> dict[str, tuple[str, str]]:
    """/opt/extensions/... path -> (source URL, verification hash) of every remote file."""
    return {f["path"]: (f["contents"]["source"], f["contents"].get("verification", {}).get("hash", ""))
            for f in config["storage"]["files"] if f["path"].startswith("/opt/extensions/")}


def links(config: dict) -> dict[str, dict]:
    return {link["path"]: link for link in config["storage"].get("links", [])}


def units(config: dict) -> dict[str, dict]:
    return {u["name"]: u for u in config["systemd"]["units"]}


# --- sysupdate: a transfer is written only where systemd-sysupdate runs it -----------------------------

def assert_sysupdate_is_wired(config: dict) -> list[str]:
    """Every /etc/sysupdate.<C>.d/ transfer has the systemd-sysupdate.service drop-in running `-C <C>`,
    the timer that starts it, and a transfer in /etc/sysupdate.d (plain systemd-sysupdate fails
    without one). Returns the components."""
    files = files_of(config)
    components = sorted({m[1] for p in files if (m := re.fullmatch(r"/etc/sysupdate\.([^/]+)\.d/[^/]+\.conf", p))})
    if not components:
        assert not any(p.startswith("/etc/sysupdate") for p in files)
        assert "systemd-sysupdate.service" not in units(config)
        return []
    service = units(config).get("systemd-sysupdate.service", {})
    dropins = {d["name"]: d["contents"] for d in service.get("dropins", [])}
    for component in components:
        assert f"ExecStartPre=/usr/lib/systemd/systemd-sysupdate -C {component} update" in \
            dropins.get(f"{component}.conf", ""), component
    assert units(config)["systemd-sysupdate.timer"]["enabled"] is True
    assert any(p.startswith("/etc/sysupdate.d/") for p in files)
    return components


def test_by_default_no_sysupdate_config_is_written(tmp_path):
    """The bug: /etc/sysupdate.kubernetes.d/ was written, but nothing ran `systemd-sysupdate -C kubernetes`."""
    assert run_generate(tmp_path / "o").exit_code == 0
    for name in NODES:
        assert assert_sysupdate_is_wired(ignition(tmp_path / "o", name)) == []


def test_sysupdate_true_wires_every_extension_with_its_component(tmp_path):
    assets(tmp_path)
    result = run_generate(tmp_path / "o", config=config(tmp_path, EXTRAS + "sysupdate: true\n"))
    assert result.exit_code == 0, result.output
    worker2 = ignition(tmp_path / "o", "worker-2")
    assert assert_sysupdate_is_wired(worker2) == ["containerd", "kubernetes", "mytools"]
    assert assert_sysupdate_is_wired(ignition(tmp_path / "o", "cp-1")) == ["kubernetes"]
    transfer = files_of(worker2)["/etc/sysupdate.kubernetes.d/kubernetes.conf"].decode()
    # Patch updates only, from what the appliance serves, into the bakery's layout.
    assert "Path=http://10.0.0.2:8080/assets/sysext/\n" in transfer
    assert "MatchPattern=kubernetes-v1.36.@v-%a.raw\n" in transfer
    assert "CurrentSymlink=/etc/extensions/kubernetes.raw\n" in transfer
    assert "MatchPattern=containerd-2.0.@v-%a.raw\n" in files_of(worker2)["/etc/sysupdate.containerd.d/containerd.conf"].decode()
    assert "served" not in result.output  # the SHA256SUMS lists only files that are there


def test_sysupdate_warns_when_the_served_sums_list_a_file_that_is_not_served(tmp_path):
    assets(tmp_path, sums=[*IMAGES, "kubernetes-v1.36.4-x86-64.raw"])
    result = run_generate(tmp_path / "o", config=config(tmp_path, EXTRAS + "sysupdate: true\n"))
    assert result.exit_code == 0
    assert "lists kubernetes-v1.36.4-x86-64.raw, which is not served" in result.output


# --- placement and hashes ------------------------------------------------------------------------------

def test_extra_sysexts_go_to_their_roles_and_nodes_with_their_hashes(tmp_path):
    assets(tmp_path)
    result = run_generate(tmp_path / "o", config=config(tmp_path, EXTRAS))
    assert result.exit_code == 0, result.output
    base = "http://10.0.0.2:8080/assets/sysext/"
    k8s = ("/opt/extensions/kubernetes/kubernetes-v1.36.3-x86-64.raw",
           (base + "kubernetes-v1.36.3-x86-64.raw", sha512(b"k8s image")))
    containerd = ("/opt/extensions/containerd/containerd-2.0.4-x86-64.raw",
                  (base + "containerd-2.0.4-x86-64.raw", sha512(b"containerd image")))
    mytools = ("/opt/extensions/mytools/mytools-1.0-x86-64.raw", (base + "mytools-1.0-x86-64.raw",
                                                                 sha512(b"a user's own image")))
    expected = {"cp-1": [k8s], "cp-3": [k8s], "worker-1": [k8s, containerd], "worker-2": [k8s, containerd, mytools]}
    for name, entries in expected.items():
        config_ = ignition(tmp_path / "o", name)
        assert placed(config_) == dict(entries), name
        for path, _ in entries:  # merged through /etc/extensions/<name>.raw, as the bakery documents
            ext = path.split("/")[3]
            assert links(config_)[f"/etc/extensions/{ext}.raw"] == {
                "path": f"/etc/extensions/{ext}.raw", "hard": False, "target": path}
    # The bakery's containerd replaces Flatcar's built-in one, masked as the bakery's docs do it.
    assert links(ignition(tmp_path / "o", "worker-1"))["/etc/extensions/containerd-flatcar.raw"] == {
        "overwrite": True, "path": "/etc/extensions/containerd-flatcar.raw", "hard": False, "target": "/dev/null"}
    assert "/etc/extensions/containerd-flatcar.raw" not in links(ignition(tmp_path / "o", "cp-1"))


def test_a_missing_extension_is_fetched_without_a_hash_and_generate_says_so(tmp_path):
    assets(tmp_path, images={"kubernetes-v1.36.3-x86-64.raw": b"k8s image"})
    result = run_generate(tmp_path / "o", config=config(tmp_path, EXTRAS))
    assert result.exit_code == 0
    assert "containerd-2.0.4-x86-64.raw not found" in result.output
    assert placed(ignition(tmp_path / "o", "worker-1"))["/opt/extensions/containerd/containerd-2.0.4-x86-64.raw"][1] == ""


def test_arm64_nodes_get_the_arm64_file(tmp_path):
    text = EXAMPLE.read_text().replace("ip: 10.0.0.22, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222, arch: amd64",
                                       "ip: 10.0.0.22, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222, arch: arm64")
    path = tmp_path / "cluster.yaml"
    path.write_text(text + "sysexts:\n  - {name: containerd, version: 2.0.4}\n")
    ipxe = tmp_path / "ipxe"  # arm64 nodes need an arm64 iPXE build beside Debian's x86 ones
    ipxe.mkdir()
    (ipxe / "snp-arm64.efi").write_bytes(b"stand-in arm64 iPXE")
    result = run_generate(tmp_path / "o", "--ipxe-dir", str(ipxe), config=path)
    assert result.exit_code == 0, result.output
    assert "/opt/extensions/containerd/containerd-2.0.4-arm64.raw" in placed(ignition(tmp_path / "o", "worker-2"))
    assert "/opt/extensions/containerd/containerd-2.0.4-x86-64.raw" in placed(ignition(tmp_path / "o", "worker-1"))


# --- validate: the shape of `sysexts:` ---------------------------------------------------------------

def problems(extra: str) -> list[tuple[str, str, str]]:
    _, found = check(parse_source(EXAMPLE.read_text() + extra, Path("cluster.yaml")), "cluster.yaml")
    return [(p.severity, p.path, p.message) for p in found]


@pytest.mark.parametrize("entries, path, fragment", [
    ("- {name: kubernetes, version: v1.36.4}", "sysexts[0].name", "Kubernetes comes from cluster.k8s_version"),
    ("- {name: containerd, version: 2.0.4, nodes: [worker-9]}", "sysexts[0].nodes[0]", "no node is named worker-9"),
    ("- {name: containerd, version: 2.0.4}\n  - {name: containerd, version: 2.0.4, roles: [worker]}",
     "sysexts[1]", "containerd 2.0.4 is already sysexts[0] on worker-1, worker-2"),
    ("- {name: containerd, version: 2.0.4, roles: [worker]}\n  - {name: containerd, version: 2.0.5, nodes: [worker-2]}",
     "sysexts[1]", "containerd 2.0.5 and sysexts[0]'s 2.0.4 would both be /etc/extensions/containerd.raw on worker-2"),
    ("- {name: Containerd, version: 2.0.4}", "sysexts[0].name", "is not a sysext name"),
    ("- {name: containerd, version: ../x}", "sysexts[0].version", "is not a sysext version"),
    ("- {name: containerd, version: 2.0}", "sysexts[0].version", "must be a version like 2.0.4 written as a string"),
    ("- {name: containerd, version: 2.0.4, roles: [master]}", "sysexts[0].roles[0]", "is not one of: controller, worker"),
    ("- {name: containerd}", "sysexts[0].version", "required field is missing"),
    ("- {name: containerd, version: 2.0.4, arch: arm64}", "sysexts[0].arch", "unknown key 'arch'"),
])
def test_sysexts_mistakes_are_errors_at_their_place(entries, path, fragment):
    found = problems(f"sysexts:\n  {entries}\n")
    assert any(sev == "error" and p == path and fragment in msg for sev, p, msg in found), found


def test_different_versions_for_different_nodes_are_fine():
    assert problems("sysexts:\n  - {name: containerd, version: 2.0.4, roles: [worker]}\n"
                    "  - {name: containerd, version: 1.7.27, roles: [controller]}\n") == []


def test_an_entry_for_no_node_is_a_warning():
    text = EXAMPLE.read_text().replace("role: worker", "role: controller")
    _, found = check(parse_source(text + "sysexts:\n  - {name: gpu, version: 1.0.0, roles: [worker]}\n",
                                  Path("cluster.yaml")), "cluster.yaml")
    assert [(p.severity, p.path) for p in found if "for no node" in p.message] == [("warning", "sysexts[0]")]


# --- validate --assets ---------------------------------------------------------------------------------

def validate(*args: str):
    return runner.invoke(app, ["validate", *args])


def test_validate_names_the_missing_file_and_how_to_bake_it(tmp_path):
    directory = assets(tmp_path, images={"kubernetes-v1.36.3-x86-64.raw": b"k8s"})
    result = validate("--config", str(config(tmp_path, EXTRAS)), "--assets", str(directory))
    assert result.exit_code == 1
    assert (f"sysexts[0]: containerd-2.0.4-x86-64.raw is not in {directory / 'sysext'}: nodes would fail to "
            "fetch it; build the image with --build-arg SYSEXTS=\"containerd-2.0.4\"") in result.output
    assert "mytools-1.0-x86-64.raw is not in" in result.output


def test_validate_passes_when_every_file_is_there(tmp_path):
    result = validate("--config", str(config(tmp_path, EXTRAS)), "--assets", str(assets(tmp_path)))
    assert result.exit_code == 0, result.output


def test_validate_with_sysupdate_refuses_sums_of_files_not_served(tmp_path):
    directory = assets(tmp_path, sums=[*IMAGES, "kubernetes-v1.36.4-x86-64.raw"])
    result = validate("--config", str(config(tmp_path, "sysupdate: true\n")), "--assets", str(directory))
    assert result.exit_code == 1
    assert "sysupdate: " in result.output and "lists kubernetes-v1.36.4-x86-64.raw, which is not served" in result.output


def test_validate_with_an_assets_dir_that_does_not_exist(tmp_path):
    result = validate("--config", str(EXAMPLE), "--assets", str(tmp_path / "nope"))
    assert result.exit_code == 1 and f"assets directory {tmp_path / 'nope'} not found" in result.output


def test_validate_without_assets_checks_nothing_but_says_so_for_sysexts(tmp_path, monkeypatch):
    monkeypatch.setattr("app.cli.validate.DEFAULT_ASSETS", tmp_path / "absent")
    assert validate("--config", str(EXAMPLE), "--strict").exit_code == 0
    result = validate("--config", str(config(tmp_path, EXTRAS)))
    assert result.exit_code == 0 and "sysexts: warning" not in result.output
    assert "not checked: no assets directory" in result.output
