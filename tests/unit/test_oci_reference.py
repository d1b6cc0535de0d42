"""Registry names, references and digests as the distribution spec and containerd's mirror requests
shape them (no disk, no sockets)."""

from __future__ import annotations

import pytest

from app.oci.reference import normalize_registry, parse_reference, repository_key, valid_digest, valid_tag

SHA256 = "sha256:" + "ab" * 32
SHA512 = "sha512:" + "cd" * 64


@pytest.mark.parametrize(("name", "ns", "expected"), [
    # containerd asking a mirror: the registry is in ?ns=, the name is the upstream repository
    ("pause", "registry.k8s.io", "registry.k8s.io/pause"),
    ("kube-vip/kube-vip", "ghcr.io", "ghcr.io/kube-vip/kube-vip"),
    ("coredns/coredns", "registry.k8s.io", "registry.k8s.io/coredns/coredns"),
    ("library/busybox", "docker.io", "docker.io/library/busybox"),
    ("busybox", "docker.io", "docker.io/library/busybox"),  # Hub's implicit library/
    ("busybox", "registry-1.docker.io", "docker.io/library/busybox"),
    ("busybox", "REGISTRY.K8S.IO", "registry.k8s.io/busybox"),  # host names are case-insensitive
    ("app", "localhost:5000", "localhost:5000/app"),
    # a client pointed at us directly: the registry is the first path component
    ("registry.k8s.io/pause", None, "registry.k8s.io/pause"),
    ("quay.io/cilium/cilium", None, "quay.io/cilium/cilium"),
    ("localhost/app", None, "localhost/app"),
    ("127.0.0.1:5000/app", None, "127.0.0.1:5000/app"),
    ("docker.io/busybox", None, "docker.io/library/busybox"),
    ("index.docker.io/library/busybox", None, "docker.io/library/busybox"),
    # no registry component: Docker Hub, as a Docker daemon mirror asks
    ("library/busybox", None, "docker.io/library/busybox"),
    ("busybox", None, "docker.io/library/busybox"),
    ("bitnami/redis", None, "docker.io/bitnami/redis"),
])
def test_repository_key_accepts_both_request_shapes(name, ns, expected):
    assert repository_key(name, ns) == expected


@pytest.mark.parametrize(("name", "ns"), [
    ("Pause", "registry.k8s.io"),  # repository components are lower-case
    ("pause/", "registry.k8s.io"),
    ("../pause", "registry.k8s.io"),
    ("pause/../../etc", None),
    ("", "registry.k8s.io"),
    ("a//b", None),
    ("pause", "bad host!"),
    ("pause", "-registry.k8s.io"),
    ("pause", ""),
    ("x" * 300, "registry.k8s.io"),
    ("pau\x00se", "registry.k8s.io"),
])
def test_repository_key_rejects_invalid_names(name, ns):
    assert repository_key(name, ns) is None


@pytest.mark.parametrize(("ref", "expected"), [
    ("registry.k8s.io/pause:3.10", ("registry.k8s.io/pause", "3.10")),
    ("ghcr.io/kube-vip/kube-vip:v0.8.0", ("ghcr.io/kube-vip/kube-vip", "v0.8.0")),
    ("localhost:5000/app:1", ("localhost:5000/app", "1")),
    ("busybox:1.36", ("docker.io/library/busybox", "1.36")),
    ("docker.io/library/busybox:1.36", ("docker.io/library/busybox", "1.36")),
])
def test_parse_reference_reads_full_references(ref, expected):
    assert parse_reference(ref) == expected


@pytest.mark.parametrize("ref", [
    "3.10",  # a bare tag, as plain OCI tools write ref.name: no registry to serve it under
    "latest",
    "registry.k8s.io/pause",  # no tag
    "localhost:5000/app",  # the colon is a port, not a tag
    f"registry.k8s.io/pause@{SHA256}",
    "registry.k8s.io/pause:",
    "registry.k8s.io/pause:-bad",
    "registry.k8s.io/Pause:3.10",
])
def test_parse_reference_rejects_what_cannot_be_placed(ref):
    assert parse_reference(ref) is None


@pytest.mark.parametrize("digest", [SHA256, SHA512])
def test_valid_digests(digest):
    assert valid_digest(digest)


@pytest.mark.parametrize("digest", [
    "sha256:" + "AB" * 32,  # upper case hex would name a different file
    "sha256:" + "ab" * 31,
    "sha256:" + "ab" * 33,
    "sha512:" + "ab" * 32,
    "md5:" + "ab" * 16,
    "sha256:../../index.json",
    "sha256/" + "ab" * 32,
    "sha256:" + "ab" * 31 + "/x",
    SHA256 + "\n",
    "",
])
def test_invalid_digests(digest):
    assert not valid_digest(digest)


def test_tags_follow_the_spec():
    assert valid_tag("v1.30.2") and valid_tag("_x") and valid_tag("a" * 128)
    assert not valid_tag("a" * 129) and not valid_tag(".x") and not valid_tag("-x") and not valid_tag("a/b")


def test_docker_hub_aliases_become_docker_io():
    assert {normalize_registry(h) for h in ("docker.io", "index.docker.io", "registry-1.docker.io")} == {"docker.io"}
    assert normalize_registry("ghcr.io") == "ghcr.io"
