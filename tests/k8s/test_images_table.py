"""app/render/k8s-images.yaml says what `kubeadm config images list` prints for each supported
version; the real kubeadm of that version says the same, line for line."""

from __future__ import annotations

import subprocess

import pytest

from app.render import images
from tests.support import k8s_builds


def test_the_table_lists_exactly_the_supported_versions():
    assert sorted(images.supported_versions()) == sorted(k8s_builds.SUPPORTED)


@pytest.mark.parametrize("version", sorted(images.supported_versions()))
def test_table_matches_real_kubeadm(version):
    kubeadm = k8s_builds.kubeadm(version)
    run = subprocess.run([str(kubeadm), "config", "images", "list", "--kubernetes-version", version],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.split()) == sorted(images.kubeadm_images(version))
    assert images.sandbox_image(version) in run.stdout.split()
