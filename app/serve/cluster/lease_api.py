"""The three Lease calls leader election makes (get, create, replace with a resourceVersion), over
the official `kubernetes` client's connection handling, as raw JSON: the MicroTime fields are
written and read as the API server spells them, never through a model's date parsing."""

from __future__ import annotations

import json
from pathlib import Path

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from app.serve.cluster import in_cluster
from app.serve.cluster.leader import Lease, Record
from app.serve.errors import ServeError

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class Unreachable(Exception):
    """The call did not get an answer that says anything about the Lease (network, 5xx, timeout)."""


class Conflict(Exception):
    """409: another writer changed (or created) the Lease since we read it."""


def connect(kubeconfig: Path | None) -> k8s.ApiClient:
    """A client for `kubeconfig`, or for the pod's ServiceAccount when None (in_cluster); ServeError if neither."""
    configuration = k8s.Configuration()
    try:
        if kubeconfig is None:
            in_cluster.load(configuration)
        else:
            k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    except (k8s_config.ConfigException, OSError, ValueError, yaml.YAMLError, TypeError, AttributeError,
            KeyError) as exc:  # the client's loader lets a file that is not a kubeconfig mapping through
        where = kubeconfig or "the in-cluster config (not in a pod? pass --kubeconfig)"
        raise ServeError(f"cannot load {where}: {exc}") from None
    configuration.retries = False  # the election loop retries, on its own schedule
    return k8s.ApiClient(configuration)


class LeaseApi:
    """One Lease in one namespace. Each call is bounded by `timeout` seconds."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str, timeout: float):
        self.api, self.namespace, self.name, self.timeout = api, namespace, name, timeout
        self.collection = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    def get(self, default_duration: int) -> Lease | None:
        status, body = self._call("GET", f"{self.collection}/{self.name}")
        if status == 404:
            return None
        return self._lease(status, body, default_duration)

    def create(self, record: Record) -> Lease:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace}, "spec": record.spec()}
        return self._lease(*self._call("POST", self.collection, body), record.duration)

    def replace(self, record: Record, version: str) -> Lease:
        """PUT naming `version`: the API server refuses it (409) if the Lease changed since."""
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace, "resourceVersion": version},
                "spec": record.spec()}
        return self._lease(*self._call("PUT", f"{self.collection}/{self.name}", body), record.duration)

    def _lease(self, status: int, body: bytes, default_duration: int) -> Lease:
        if status == 409:
            raise Conflict(f"Lease {self.namespace}/{self.name} changed under us")
        if status >= 300:
            detail = body[:300].decode(errors="replace")
            if status in (401, 403):  # worth saying loudly: no amount of retrying fixes RBAC
                raise Unreachable(f"HTTP {status} on Lease {self.namespace}/{self.name} (RBAC? needs get, create "
                                  f"and update on leases in {self.namespace}): {detail}")
            raise Unreachable(f"HTTP {status} on Lease {self.namespace}/{self.name}: {detail}")
        data = json.loads(body)
        return Lease(Record.from_spec(data.get("spec"), default_duration), data["metadata"]["resourceVersion"])

    def _call(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        try:
            params = self.api.param_serialize(method, path, header_params=dict(JSON), body=body,
                                              auth_settings=["BearerToken"])
            response = self.api.call_api(*params[:5], _request_timeout=self.timeout)
            response.read()
        except ApiException as exc:  # the client raises for some statuses and wraps connection failures
            if exc.status:
                return exc.status, (exc.body or "").encode() if isinstance(exc.body, str) else exc.body or b""
            raise Unreachable(str(exc.reason or exc)[:200]) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(f"{method} {path}: {exc}"[:300]) from None
        return response.status, response.data
