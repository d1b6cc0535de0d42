"""Image references as the distribution spec and Docker spell them: names, tags, digests, and the
catalogue key `registry/repository` a reference or a registry request maps to."""

from __future__ import annotations

import re

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DIGEST = re.compile(r"(sha256):([a-f0-9]{64})|(sha512):([a-f0-9]{128})")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?")
MAX_NAME = 255


def valid_digest(text: str) -> bool:
    """Only lower-case sha256/sha512 in their exact lengths: a digest becomes a file name."""
    return _DIGEST.fullmatch(text) is not None


def valid_tag(text: str) -> bool:
    return _TAG.fullmatch(text) is not None


def _looks_like_registry(component: str) -> bool:
    """Docker's rule for the first path component of a reference: a registry host when it has a
    dot or a port, or is localhost; otherwise the name is on Docker Hub."""
    return "." in component or ":" in component or component == "localhost"


def normalize_registry(host: str) -> str | None:
    host = host.lower()
    if _DOMAIN.fullmatch(host) is None:
        return None
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def repository_key(name: str, ns: str | None = None) -> str | None:
    """The catalogue key `registry/repository` for a request's repository name, or None if invalid.

    containerd asking a mirror sends the upstream registry as `?ns=` and the repository alone
    (`pause`, `ns=registry.k8s.io`); a client pointed at us directly puts the registry in the name
    (`registry.k8s.io/pause`); a Docker Hub mirror client sends `library/busybox` with no registry.
    Docker Hub's single-component names live under `library/`."""
    if ns is not None:
        registry = normalize_registry(ns)
        repository = name
    else:
        first, _, rest = name.partition("/")
        if rest and _looks_like_registry(first):
            registry, repository = normalize_registry(first), rest
        else:
            registry, repository = DOCKER_HUB, name
    if registry is None or _REPOSITORY.fullmatch(repository) is None:
        return None
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    key = f"{registry}/{repository}"
    return key if len(key) <= MAX_NAME else None


def parse_reference(text: str) -> tuple[str, str] | None:
    """`registry.k8s.io/pause:3.10` -> (`registry.k8s.io/pause`, `3.10`); None unless it is a full
    reference with a tag (a bare tag, as plain OCI tools write it, says nothing of the registry)."""
    if "@" in text or "/" not in text and ":" not in text:
        return None
    name, sep, tag = text.rpartition(":")
    if not sep or "/" in tag or not valid_tag(tag):
        return None
    key = repository_key(name)
    return (key, tag) if key is not None else None
