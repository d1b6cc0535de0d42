"""Every exit code a command returns, in one place (docs/commands.md's table lists the same)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INVALID = 1  # cluster.yaml has errors; a preflight refused; generate or serve failed
    UNREADABLE = 2  # cluster.yaml cannot be read as YAML; an I/O error
    API = 3  # wait, pivot: the API server never answered
    NODES = 4  # wait: nodes not Ready in time
    ADDONS = 5  # wait: an add-on failed; pivot: the API server refused an object
    UNCONFINED = 6  # pivot: its admission policies were not enforced in time, so its Deployment was not applied
    PIVOT = 7  # init --pivot: the cluster is up and its kubeconfig written, but pivot failed
    INTERRUPTED = 130  # Ctrl-C or SIGTERM
