"""`pxe.uefi_loader`: which iPXE build x86-64 UEFI machines chainload (snponly.efi by default, ipxe.efi
for firmware whose SNP is broken), per cluster and per node; validated, rendered into dnsmasq.conf
(per-node choices as dhcp-mac tags) and copied into tftp/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import EXAMPLE
from tests.unit.test_cluster_checks import edit, line_of, problems_for
from tests.unit.test_generate import run_generate


def config(tmp_path: Path, cluster_loader: str | None = None, **node_loaders: str) -> Path:
    """The example without its top-level `pxe:`, or with another one, and `pxe:` on worker-1 / worker-2."""
    text = edit("\npxe: {uefi_loader: snponly}\n", f"\npxe: {{uefi_loader: {cluster_loader}}}\n"
                if cluster_loader else "\n", EXAMPLE.read_text())
    for node, loader in node_loaders.items():
        text = with_node_setting(text, node.replace("_", "-"), f"pxe: {{uefi_loader: {loader}}}")
    path = tmp_path / "cluster.yaml"
    path.write_text(text)
    return path


def with_node_setting(text: str, name: str, setting: str) -> str:
    """`setting` added to the flow mapping of node `name` (one line in the example)."""
    lines = text.splitlines(keepends=True)
    (i,) = [i for i, line in enumerate(lines) if line.lstrip().startswith(f"- {{name: {name},")]
    lines[i] = lines[i].rstrip().removesuffix("}") + f", {setting}}}\n"
    return "".join(lines)


def fake_loaders(root: Path, *names: str) -> Path:
    root.mkdir()
    for name in names:
        (root / name).write_bytes(f"{name} build".encode())
    return root


def generated(tmp_path: Path, path: Path, *names: str) -> tuple[str, Path, str]:
    ipxe = fake_loaders(tmp_path / "ipxe", *names)
    result = run_generate(tmp_path / "o", "--ipxe-dir", str(ipxe), config=path)
    assert result.exit_code == 0, result.output
    return (tmp_path / "o" / "dnsmasq.conf").read_text(), tmp_path / "o" / "tftp", result.output


def services(conf: str, arch: str = "X86-64_EFI") -> list[str]:
    """The firmware-facing (not yet iPXE) boot services for `arch`, as `tags -> file`."""
    found = re.findall(rf"^pxe-service=(tag:!ipxe[^\n]*?),{arch},\"[^\"]*\",(\S+)$", conf, re.M)
    return [f"{tags} -> {file}" for tags, file in found]


# -- the model ---------------------------------------------------------------------------------------
def test_snponly_is_the_default_and_a_node_choice_wins(tmp_path):
    cluster, _ = problems_for(config(tmp_path, worker_2="ipxe").read_text())
    loaders = {n.name: cluster.uefi_loader_of(n) for n in cluster.nodes}
    assert cluster.default_uefi_loader == "snponly"
    assert loaders == {"cp-1": "snponly", "cp-2": "snponly", "cp-3": "snponly", "worker-1": "snponly",
                       "worker-2": "ipxe"}


def test_cluster_choice_applies_to_every_node_without_its_own(tmp_path):
    cluster, _ = problems_for(config(tmp_path, "ipxe", worker_1="snponly").read_text())
    assert cluster.default_uefi_loader == "ipxe"
    assert [cluster.uefi_loader_of(n) for n in cluster.nodes] == ["ipxe", "ipxe", "ipxe", "snponly", "ipxe"]


# -- validation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("where,path,bad", [("cluster", "pxe.uefi_loader", "snp"),
                                            ("node", "nodes[4].pxe.uefi_loader", "ipxe-efi")])
def test_an_unknown_loader_is_an_error_at_its_line(tmp_path, where, path, bad):
    text = (config(tmp_path, bad) if where == "cluster" else config(tmp_path, worker_2=bad)).read_text()
    cluster, problems = problems_for(text)
    assert cluster is None
    (error,) = [p for p in problems if p.severity == "error"]
    assert error.path == path and "is not one of: snponly, ipxe" in error.message, error.text()
    assert error.line == line_of(text, f"{{uefi_loader: {bad}}}")


def test_a_misspelt_key_is_named_with_a_suggestion(tmp_path):
    text = config(tmp_path, "ipxe").read_text().replace("pxe: {uefi_loader: ipxe}", "pxe: {uefi_loadr: ipxe}")
    cluster, problems = problems_for(text)
    assert cluster is None
    assert [(p.path, p.message) for p in problems if p.severity == "error"] == [
        ("pxe.uefi_loadr", "unknown key 'uefi_loadr'; did you mean 'uefi_loader'?")]


def test_a_loader_on_an_arm64_node_is_reported_unused(tmp_path):
    text = config(tmp_path, worker_2="ipxe").read_text().replace("arch: amd64, pxe", "arch: arm64, pxe")
    cluster, problems = problems_for(text)
    assert cluster is not None
    (unused,) = [p for p in problems if p.path == "nodes[4].pxe.uefi_loader"]
    assert unused.severity == "warning" and "snp-arm64.efi" in unused.message


# -- rendered dnsmasq.conf and tftp/ ---------------------------------------------------------------------
def test_default_renders_snponly_for_every_uefi_machine(tmp_path):
    conf, tftp, output = generated(tmp_path, config(tmp_path), "undionly.kpxe", "snponly.efi", "ipxe.efi")
    for arch in ("X86-64_EFI", "BC_EFI"):
        assert services(conf, arch) == ["tag:!ipxe -> snponly.efi"]
    assert "dhcp-mac=" not in conf
    # Only what some machine can ask for is served: ipxe.efi is chosen by nobody.
    assert sorted(p.name for p in tftp.iterdir()) == ["snponly.efi", "undionly.kpxe", "undionly.kpxe.0"]
    assert (tftp / "snponly.efi").read_bytes() == b"snponly.efi build"
    assert "cannot chain" not in output


def test_a_fallback_node_is_tagged_by_mac_and_offered_ipxe(tmp_path):
    conf, tftp, _ = generated(tmp_path, config(tmp_path, worker_2="ipxe"), "undionly.kpxe", "snponly.efi",
                              "ipxe.efi")
    assert re.findall(r"^dhcp-mac=(.*)$", conf, re.M) == ["set:uefi-ipxe,52:54:00:00:00:22"]
    for arch in ("X86-64_EFI", "BC_EFI"):
        assert services(conf, arch) == ["tag:!ipxe,tag:!uefi-ipxe -> snponly.efi",
                                        "tag:!ipxe,tag:uefi-ipxe -> ipxe.efi"]
    assert (tftp / "ipxe.efi").read_bytes() == b"ipxe.efi build" and (tftp / "snponly.efi").exists()


def test_cluster_wide_ipxe_with_one_snponly_node(tmp_path):
    conf, tftp, _ = generated(tmp_path, config(tmp_path, "ipxe", worker_1="snponly"), "snponly.efi", "ipxe.efi",
                              "undionly.kpxe")
    assert re.findall(r"^dhcp-mac=(.*)$", conf, re.M) == ["set:uefi-snponly,52:54:00:00:00:21"]
    assert services(conf) == ["tag:!ipxe,tag:!uefi-snponly -> ipxe.efi", "tag:!ipxe,tag:uefi-snponly -> snponly.efi"]


def test_cluster_wide_ipxe_serves_no_snponly(tmp_path):
    conf, tftp, output = generated(tmp_path, config(tmp_path, "ipxe"), "undionly.kpxe", "ipxe.efi")
    assert services(conf) == ["tag:!ipxe -> ipxe.efi"]
    assert not (tftp / "snponly.efi").exists() and "cannot chain" not in output


def test_a_missing_chosen_loader_is_a_warning_naming_it(tmp_path):
    _, tftp, output = generated(tmp_path, config(tmp_path, worker_2="ipxe"), "undionly.kpxe", "snponly.efi")
    assert "no ipxe.efi in" in output and "cannot chain to iPXE" in output
    assert not (tftp / "ipxe.efi").exists()


@pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="needs dnsmasq (Debian: dnsmasq-base)")
def test_real_dnsmasq_accepts_the_per_node_config(tmp_path):
    conf, _, _ = generated(tmp_path, config(tmp_path, "ipxe", worker_1="snponly", worker_2="snponly"),
                           "snponly.efi", "ipxe.efi")
    assert conf.count("dhcp-mac=set:uefi-snponly,") == 2
    result = subprocess.run(["dnsmasq", "--test", f"--conf-file={tmp_path / 'o' / 'dnsmasq.conf'}"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "syntax check OK" in result.stderr, result.stderr


def test_http_boot_gets_the_same_choice_per_mac(tmp_path):
    """matchbox/uefi-loaders.json: what serve's UEFI HTTP Boot answer names (supervise/httpboot.py)."""
    generated(tmp_path, config(tmp_path, worker_2="ipxe"), "snponly.efi", "ipxe.efi")
    table = json.loads((tmp_path / "o" / "matchbox" / "uefi-loaders.json").read_text())
    assert table == {"default": "snponly.efi", "nodes": {"52:54:00:00:00:22": "ipxe.efi"}}
