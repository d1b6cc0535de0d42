"""Supported releases: Flatcar version/channel pairs from the recorded release data, the URLs the image
build fetches from, Kubernetes versions against the kubeadm image table, and the Flatcar files
`validate --assets` wants (the disk image's signature among them)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from app.cluster import check
from app.cluster.releases import (
    DISK_IMAGE,
    flatcar_asset_problems,
    flatcar_releases,
    flatcar_url,
    k8s_problem,
    kubeadm_lists,
    newest,
)
from app.yaml_source import parse_source
from tests.support.paths import EXAMPLE, REPO

BASE = EXAMPLE.read_text()
SCRIPT = REPO / "app" / "asset_scripts" / "fetch-and-verify"


def problems(text: str):
    return check(parse_source(text, Path("cluster.yaml")), "cluster.yaml")[1]


def example_spec() -> dict:
    return yaml.safe_load(BASE)["cluster"]


def test_the_example_and_the_image_build_default_to_a_recorded_stable_release_with_containerd_2():
    spec = example_spec()
    release = flatcar_releases()[spec["flatcar_version"]]
    assert release.channel == spec["flatcar_channel"] == "stable"
    assert int(release.containerd.split(".")[0]) >= 2
    dockerfile = (REPO / "Dockerfile").read_text()
    assert set(re.findall(r"ARG FLATCAR_VERSION=(\S+)", dockerfile)) == {spec["flatcar_version"]}
    assert set(re.findall(r"ARG FLATCAR_CHANNEL=(\S+)", dockerfile)) == {"stable"}
    assert not [p for p in problems(BASE) if p.path.startswith("cluster.")], problems(BASE)


def test_recorded_release_data_is_well_formed():
    releases = flatcar_releases()
    assert {"stable", "lts", "beta", "alpha"} <= {r.channel for r in releases.values()}
    for r in releases.values():
        assert re.fullmatch(r"\d+\.\d+\.\d+", r.version) and re.fullmatch(r"\d{4}-\d\d-\d\d", r.released)
        assert re.fullmatch(r"\d+\.\d+\.\d+", r.containerd) and set(r.arches) <= {"amd64", "arm64"}
    # Flatcar numbers releases by channel: stable X.2.Y, LTS X.3.Y, beta X.1.Y, alpha X.0.Y.
    digit = {"alpha": "0", "beta": "1", "stable": "2", "lts": "3"}
    assert all(r.version.split(".")[1] == digit[r.channel] for r in releases.values())


def test_lts_release_from_the_stable_channel_is_an_error_naming_the_fix():
    text = BASE.replace(f"flatcar_version: {example_spec()['flatcar_version']}", "flatcar_version: 4081.3.6")
    found = [p for p in problems(text) if p.path == "cluster.flatcar_version"]
    assert len(found) == 1 and found[0].severity == "error"
    assert "an lts release, not stable" in found[0].message and "flatcar_channel: lts" in found[0].message
    assert found[0].line == next(i for i, line in enumerate(text.splitlines(), 1) if "4081.3.6" in line)
    fixed = text.replace("flatcar_channel: stable", "flatcar_channel: lts")
    after = [p for p in problems(fixed) if p.path == "cluster.flatcar_version"]
    assert [p.severity for p in after] == ["warning"] and "containerd 1.7.21" in after[0].message


def test_unknown_flatcar_release_is_an_error_that_names_the_newest_of_its_channel():
    text = BASE.replace(f"flatcar_version: {example_spec()['flatcar_version']}", "flatcar_version: 9999.2.0")
    found = [p for p in problems(text) if p.path == "cluster.flatcar_version"]
    assert len(found) == 1 and found[0].severity == "error"
    assert newest("stable").version in found[0].message and "flatcar-releases.txt" in found[0].message


def test_url_builder_names_the_channel_server_of_each_recorded_release():
    for r in flatcar_releases().values():
        for arch in r.arches:
            assert flatcar_url(r.channel, r.version, arch) == (
                f"https://{r.channel}.release.flatcar-linux.net/{arch}-usr/{r.version}/")


def _download_env(tmp_path: Path, version: str, channel: str) -> dict:
    """fetch-and-verify in download mode with a `curl` that records the URL and fails: no network."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "curl").write_text(f'#!/bin/sh\nfor a; do last=$a; done\necho "$last" >> {tmp_path}/urls\nexit 22\n')
    (bin_dir / "curl").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FLATCAR_VERSION": version,
            "FLATCAR_CHANNEL": channel, "K8S_VERSION": "v1.36.3", "ARCH": "amd64", "FLANNEL_VERSION": "",
            "FLANNEL_SHA256": ""}


@pytest.mark.parametrize("version", [newest("stable").version, newest("lts").version, newest("beta").version])
def test_image_build_downloads_from_the_url_builder_for_the_recorded_channel(tmp_path, version):
    channel = flatcar_releases()[version].channel
    run = subprocess.run([str(SCRIPT), "download", str(tmp_path), str(tmp_path / "a")],
                         env=_download_env(tmp_path, version, channel), capture_output=True, text=True)
    assert run.returncode != 0  # the recording curl fails the first download
    first = (tmp_path / "urls").read_text().split()[0]
    assert first == flatcar_url(channel, version) + "flatcar_production_pxe.vmlinuz"


def test_image_build_refuses_a_pair_not_in_the_release_data_before_downloading(tmp_path):
    run = subprocess.run([str(SCRIPT), "download", str(tmp_path), str(tmp_path / "a")],
                         env=_download_env(tmp_path, "4081.3.6", "stable"), capture_output=True, text=True)
    assert run.returncode != 0 and not (tmp_path / "urls").exists()
    assert "4081.3.6 is a lts release, not stable" in run.stderr and "FLATCAR_CHANNEL=lts" in run.stderr
    unknown = subprocess.run([str(SCRIPT), "download", str(tmp_path), str(tmp_path / "b")],
                             env=_download_env(tmp_path, "1.2.3", "stable"), capture_output=True, text=True)
    assert unknown.returncode != 0 and "not in flatcar-releases.txt" in unknown.stderr


def test_validate_assets_names_the_missing_signature(tmp_path):
    version = newest("stable").version
    where = tmp_path / "flatcar" / version
    where.mkdir(parents=True)
    for name in ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz", DISK_IMAGE):
        (where / name).write_bytes(b"x")
    found = flatcar_asset_problems(version, {"amd64"}, tmp_path)
    assert len(found) == 1 and found[0].startswith(f"{DISK_IMAGE}.sig is not in {where}")
    assert flatcar_url("stable", version) in found[0]
    (where / f"{DISK_IMAGE}.sig").write_bytes(b"s")
    assert flatcar_asset_problems(version, {"amd64"}, tmp_path) == []
    assert len(flatcar_asset_problems(version, {"arm64"}, tmp_path)) == 4  # flatcar-arm64/ holds none


def test_every_kubeadm_listed_version_is_supported():
    listed = kubeadm_lists()
    assert listed and all(k8s_problem(v) is None for v in listed)


def test_kubernetes_outside_the_supported_minors_is_an_error():
    listed = kubeadm_lists()
    oldest = [int(x) for x in listed[0].lstrip("v").split(".")]
    too_old = f"v1.{oldest[1] - 1}.0"
    why = k8s_problem(too_old)
    assert why and "outside the supported minors" in why and listed[-1] in why


def test_kubernetes_patch_without_an_image_list_is_an_error_naming_the_listed_one():
    listed = kubeadm_lists()
    major, minor_, patch = listed[-1].lstrip("v").split(".")
    unlisted = f"v{major}.{minor_}.{int(patch) + 50}"
    why = k8s_problem(unlisted)
    assert why and "no kubeadm image list" in why and listed[-1] in why
    text = BASE.replace(f"k8s_version: {example_spec()['k8s_version']}", f"k8s_version: {unlisted}")
    found = [p for p in problems(text) if p.path == "cluster.k8s_version"]
    assert [p.severity for p in found] == ["error"]
    assert found[0].line == next(i for i, line in enumerate(text.splitlines(), 1) if unlisted in line)
