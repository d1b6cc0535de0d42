"""What a pod sees of its ServiceAccount: a token, the cluster's CA and its namespace, as files under
one directory, and the API server's address in KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT.

The directory is the kubelet's `/var/run/secrets/kubernetes.io/serviceaccount` unless the variable
BOOTSTRAP_NODE_SERVICE_ACCOUNT_DIR names another: a projected token mounted elsewhere, or a test that
lays out a real ServiceAccount token the way a pod would see it. The files are read by the
`kubernetes` client's own in-cluster loader, which also re-reads the token as the kubelet rotates it.
"""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes import client as k8s
from kubernetes.config.incluster_config import InClusterConfigLoader

DIR_ENV = "BOOTSTRAP_NODE_SERVICE_ACCOUNT_DIR"
DEFAULT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN, CA, NAMESPACE = "token", "ca.crt", "namespace"


def directory() -> Path:
    return Path(os.environ.get(DIR_ENV) or DEFAULT_DIR)


def namespace_file() -> Path:
    return directory() / NAMESPACE


def load(configuration: k8s.Configuration) -> None:
    """Fill `configuration` from the pod's view; the loader's ConfigException when something is missing."""
    where = directory()
    InClusterConfigLoader(token_filename=str(where / TOKEN), cert_filename=str(where / CA)).load_and_set(configuration)
