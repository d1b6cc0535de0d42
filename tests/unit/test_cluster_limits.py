"""The YAML loader's limits (issue 14): every hostile input ends in a SourceError that names the
limit and, where there is one, the line and column; legitimate anchors and merge keys still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cluster import check
from app.ignition.butane import ButaneError, translate
from app.yaml_source import DEFAULT_LIMITS, Limits, Pos, SourceError, load_source, parse_source
from tests.support.paths import EXAMPLE
from tests.support.yaml_bombs import BOMBS, DEEP, alias_bomb, at, names_the_problem


def refused(text: str, limits: Limits = DEFAULT_LIMITS) -> SourceError:
    with pytest.raises(SourceError) as exc:
        parse_source(text, Path("c.yaml"), limits)
    return exc.value


@pytest.mark.parametrize("name", list(BOMBS))
def test_each_bomb_is_refused_naming_the_limit_and_place(name):
    text, _, fragment, pos = BOMBS[name]
    error = refused(text)
    assert names_the_problem(fragment, error.message), error.message
    assert at(pos, *(error.pos or (None, None)), error.message), error.pos


def test_alias_bomb_is_refused_while_reading_anchors_not_by_expanding():
    # a and b take 103 nodes; with a budget of 150 the first *b (91 nodes) on line 3 crosses it: the
    # loader charges an alias the full size of its anchor the moment it reads it.
    error = refused(alias_bomb(), Limits(max_nodes=150))
    assert error.pos == Pos(3, 8) and "alias *b stands for 91 nodes" in error.message


def test_depth_counts_what_an_alias_brings_along():
    deep = "a: &a " + "[" * 5 + "]" * 5 + "\nb: [[[[*a]]]]\n"
    assert parse_source(deep, Path("c.yaml"), Limits(max_depth=10)).data["b"]
    error = refused(deep, Limits(max_depth=9))
    assert "exceeds the limit of 9 levels" in error.message and "through alias *a" in error.message


def test_small_limits_are_applied_exactly():
    assert parse_source("a: [[1]]\n", Path("c"), Limits(max_depth=4)).data == {"a": [[1]]}
    assert "limit of 3 levels" in refused("a: [[1]]\n", Limits(max_depth=3)).message
    assert parse_source("a: 12345\n", Path("c"), Limits(max_number_chars=5)).data == {"a": 12345}
    assert "limit of 4 digits" in refused("a: 12345\n", Limits(max_number_chars=4)).message
    assert parse_source("a: '12345'\n", Path("c"), Limits(max_number_chars=4)).data == {"a": "12345"}
    assert "limit of 4 characters" in refused("a: hello\n", Limits(max_scalar_chars=4)).message
    assert "limit of 8 bytes" in refused("a: héllo\n", Limits(max_bytes=8)).message  # é is two bytes


def test_file_size_is_checked_before_reading_it_all(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(SourceError, match="exceeds the limit of 1048576 bytes"):
        load_source(big)


def test_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"cluster:\n  name: caf\xe9\n")
    with pytest.raises(SourceError, match="not UTF-8 text"):
        load_source(path)


def test_butane_translation_has_the_same_limits():
    with pytest.raises(ButaneError, match=DEEP):
        translate("variant: flatcar\nversion: 1.0.0\nx: " + "[" * 100_000)
    with pytest.raises(ButaneError, match="exceeds the limit of 100000 nodes"):
        translate("variant: flatcar\nversion: 1.0.0\n" + alias_bomb())


def test_merge_keys_for_repeated_node_settings_are_accepted():
    text = EXAMPLE.read_text().replace(
        "  - {name: worker-1, role: worker, mac: \"52:54:00:00:00:21\", ip: 10.0.0.21, install_disk: /dev/disk/by-id/nvme-eui.0025385b71b2c321, arch: amd64}",
        "  - &worker {name: worker-1, role: worker, mac: \"52:54:00:00:00:21\", ip: 10.0.0.21, "
        "install_disk: /dev/disk/by-id/nvme-eui.0025385b71b2c399, arch: amd64}").replace(
        "  - {name: worker-2, role: worker, mac: \"52:54:00:00:00:22\", ip: 10.0.0.22, install_disk: /dev/disk/by-id/wwn-0x5000c500a0b1c222, arch: amd64}",
        "  - {<<: *worker, name: worker-2, mac: \"52:54:00:00:00:22\", ip: 10.0.0.22}")
    cluster, problems = check(parse_source(text, Path("c.yaml")), "c.yaml")
    assert problems == [] and cluster is not None
    assert cluster.nodes[4].install_disk == "/dev/disk/by-id/nvme-eui.0025385b71b2c399"
    assert cluster.nodes[4].name == "worker-2"


def test_merged_value_is_overridden_without_a_duplicate_report_and_errors_point_at_the_anchor():
    text = "d: &d {x: 1, y: bad}\nn: {<<: *d, x: 2}\n"
    source = parse_source(text, Path("c.yaml"))
    assert source.data["n"] == {"x": 2, "y": "bad"} and source.duplicates == []
    assert source.values[("n", "y")] == Pos(1, 17)  # where the merged value is written
    assert source.values[("n", "x")] == Pos(2, 16)  # the node's own value


def test_first_merged_mapping_wins_and_own_repeats_are_still_reported():
    source = parse_source("a: &a {x: 1}\nb: &b {x: 2, z: 3}\nn: {<<: [*a, *b], y: 1, y: 2}\n", Path("c"))
    assert source.data["n"] == {"x": 1, "z": 3, "y": 2}
    [(loc, first, repeat)] = source.duplicates
    assert loc == ("n", "y") and first == Pos(3, 19) and repeat == Pos(3, 25)


def cluster_with_nodes(count: int, merge: bool) -> str:
    """A cluster.yaml of `count` nodes; with `merge`, each node merges the first one's settings."""
    head = EXAMPLE.read_text().split("nodes:\n")[0].replace("10.0.0.0/24", "10.0.0.0/16")
    first = ("  - &w {name: n-0, role: controller, mac: '52:54:00:00:00:00', ip: 10.0.1.1, "
             "install_disk: /dev/sda, arch: amd64}")
    common = "<<: *w, role: worker" if merge else "role: worker, install_disk: /dev/sda, arch: amd64"
    nodes = ["nodes:", first] + [
        f"  - {{{common}, name: n-{i}, mac: '52:54:00:00:{i // 256:02x}:{i % 256:02x}', "
        f"ip: 10.0.{1 + i // 250}.{1 + i % 250}}}" for i in range(1, count)]
    return head + "\n".join(nodes) + "\n"


@pytest.mark.parametrize("count,merge", [(5000, False), (4000, True)])
def test_a_legitimately_large_cluster_fits_the_limits(count, merge):
    # 5,000 nodes is Kubernetes' largest supported cluster (13 YAML nodes each); merging a whole
    # node into each costs its 13 nodes again, so with merge keys 4,000 fit.
    text = cluster_with_nodes(count, merge)
    assert len(text.encode()) < DEFAULT_LIMITS.max_bytes
    nodes = parse_source(text, Path("c.yaml")).data["nodes"]
    assert len(nodes) == count and nodes[-1]["install_disk"] == "/dev/sda" and nodes[-1]["role"] == "worker"


def test_more_nodes_than_kubernetes_supports_is_one_error_not_5001_checks():
    text = EXAMPLE.read_text().split("nodes:\n")[0] + "nodes: [" + ", ".join(["x"] * 5001) + "]\n"
    cluster, problems = check(parse_source(text, Path("c.yaml")), "c.yaml")
    assert cluster is None
    assert [(p.path, p.message) for p in problems] == [
        ("nodes", "lists 5001 machines, more than the 5000 nodes a Kubernetes cluster supports")]


def test_merge_key_needs_a_mapping():
    assert "a merge key `<<` takes a mapping" in refused("a: {<<: 1}\n").message
