"""`install_disk`: a stable name, or a kernel name only when the node opts in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cluster import check
from app.yaml_source import parse_source
from tests.support.paths import EXAMPLE

WORKER_2 = "install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222"


def errors(text: str):
    return [p for p in check(parse_source(text, Path("cluster.yaml")), "cluster.yaml")[1] if p.severity == "error"]


@pytest.mark.parametrize("name", ["/dev/sda", "/dev/sdab", "/dev/nvme0n1", "/dev/vda", "/dev/mmcblk0", "/dev/xvdb"])
def test_a_kernel_name_is_refused_naming_the_opt_in(name):
    text = EXAMPLE.read_text().replace(WORKER_2, f"install_disk: {name}")
    (problem,) = errors(text)
    assert problem.path == "nodes[4].install_disk" and f"{name} is a kernel name" in problem.message
    assert "/dev/disk/by-id/" in problem.message and "allow_kernel_disk_name: true" in problem.message
    assert "worker-2" in text.splitlines()[problem.line - 1]


def test_the_opt_in_accepts_a_kernel_name_for_that_node_only():
    text = EXAMPLE.read_text().replace(WORKER_2, "install_disk: /dev/sda, allow_kernel_disk_name: true")
    assert errors(text) == []
    both = text.replace("install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c211", "install_disk: /dev/sda")
    assert [p.path for p in errors(both)] == ["nodes[0].install_disk"]


@pytest.mark.parametrize("name", ["/dev/disk/by-path/pci-0000:00:17.0-ata-1", "/dev/md0", "/dev/mapper/mpatha"])
def test_stable_and_other_names_pass(name):
    assert errors(EXAMPLE.read_text().replace(WORKER_2, f"install_disk: '{name}'")) == []


def test_a_node_without_install_disk_is_told_to_name_it():
    text = EXAMPLE.read_text().replace(f", {WORKER_2}", "")
    (problem,) = errors(text)
    assert problem.path == "nodes[4].install_disk" and "required field is missing" in problem.message
    assert "/dev/disk/by-id/" in problem.message


# install_disk is pasted unquoted into the install script (`flatcar-install -d {{ NODE_DISK }}`), which
# runs as root on the installing machine with its final config: a shell word in it runs there. It can
# come from a Machine (`kubectl apply` by whoever may write Machines, then `unpivot`) or from a disk
# name a machine reported, copied out of `discover`'s suggestion.
@pytest.mark.parametrize("name", ["/dev/disk/by-id/x$(reboot)", "/dev/disk/by-id/x;reboot", "/dev/disk/by-id/a b",
                                  "/dev/disk/by-id/x`id`", "/dev/disk/by-id/x|sh", "/dev/disk/by-id/x'y",
                                  '/dev/disk/by-id/x"y', "/dev/disk/by-id/x&y", "/dev/disk/by-id/x>y"])
def test_a_shell_word_in_install_disk_is_refused(name):
    (problem,) = errors(EXAMPLE.read_text().replace(WORKER_2, f"install_disk: {json.dumps(name)}"))
    assert problem.path == "nodes[4].install_disk" and "may hold only" in problem.message, problem.message
