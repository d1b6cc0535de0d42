"""The calls cluster mode makes, over the `kubernetes` client's connection (lease_api.connect): list
and watch the Machines (and, the same way, the other objects a render reads), PATCH a Machine's status
subresource, and create an events.k8s.io/v1 Event. Raw JSON, like the Lease calls: the objects are
read as the API server writes them."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

import urllib3
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from app.cluster.machines import API_VERSION, GROUP, MACHINE, MACHINES, VERSION
from app.serve.cluster.lease_api import Unreachable

FIELD_MANAGER = "bootstrap-node"
WATCH_SECONDS = 240  # the server ends a watch after this; the next one starts from the last version seen
EVENT_REPORTER = "bootstrap-node"


class MachinesApi:
    def __init__(self, api: k8s.ApiClient, namespace: str, timeout: float = 10.0):
        self.api, self.namespace, self.timeout = api, namespace, timeout
        self.collection = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{MACHINES}"
        self._streaming = None  # the open watch's response, for abort()

    def list(self, collection: str | None = None) -> tuple[list[dict], str]:
        """(the Machines, or the objects of another `collection`; the list's resourceVersion to watch from)."""
        body = json.loads(self._call("GET", collection or self.collection))
        return body.get("items") or [], body.get("metadata", {}).get("resourceVersion", "")

    def read(self, path: str) -> dict | None:
        """The object at `path` (any kind), or None when there is none."""
        try:
            return json.loads(self._call("GET", path))
        except NotFound:
            return None

    def watch(self, version: str, on_event: Callable[[dict], bool], collection: str | None = None,
              name: str | None = None) -> None:
        """Stream watch events from `version` to `on_event` (which returns False to stop) until the
        server ends the watch. Bookmarks are asked for: they move the version on without a change.
        `collection` and `name`: another collection than the Machines, and only its object `name` (a
        watch RBAC may grant by name)."""
        query = [("watch", "true"), ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(WATCH_SECONDS))]
        if name:
            query.append(("fieldSelector", f"metadata.name={name}"))
        collection = collection or self.collection
        response = self._open("GET", collection, query=query, timeout=(self.timeout, WATCH_SECONDS + 30)).response
        self._streaming = response
        try:
            buffer = b""
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and not on_event(json.loads(line)):
                        return
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(f"watch {collection}: {exc}"[:300]) from None
        finally:
            self._streaming = None
            response.release_conn()

    def abort(self) -> None:
        """End the open watch from another thread: serve's stop must not wait out WATCH_SECONDS (the
        thread it reads in cannot be cancelled, and asyncio waits for it on exit)."""
        response = self._streaming
        if response is not None:
            response.shutdown()

    def get(self, name: str) -> dict:
        return json.loads(self._call("GET", f"{self.collection}/{name}"))

    def patch_status(self, name: str, status: dict, version: str = "") -> dict:
        """A JSON merge patch of the status subresource, as field manager bootstrap-node. With
        `version`, only onto that resourceVersion of the Machine (Conflict otherwise): the server
        checks it before it applies anything."""
        body = {"status": status, **({"metadata": {"resourceVersion": version}} if version else {})}
        return json.loads(self._call("PATCH", f"{self.collection}/{name}/status", body,
                                     content_type="application/merge-patch+json",
                                     query=[("fieldManager", FIELD_MANAGER)]))

    def event(self, name: str, uid: str, reason: str, note: str, warning: bool, instance: str) -> None:
        """An events.k8s.io/v1 Event about Machine `name` (kubectl describe machine shows it)."""
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"generateName": f"{name}-", "namespace": self.namespace},
                "eventTime": now, "reportingController": f"{GROUP}/{EVENT_REPORTER}",
                "reportingInstance": instance[:128] or EVENT_REPORTER, "action": "Provision",
                "reason": reason, "note": note[:1024], "type": "Warning" if warning else "Normal",
                "regarding": {"apiVersion": API_VERSION, "kind": MACHINE, "namespace": self.namespace,
                              "name": name, "uid": uid}}
        self._call("POST", f"/apis/events.k8s.io/v1/namespaces/{self.namespace}/events", body)

    def _call(self, method: str, path: str, body: dict | None = None, content_type: str = "application/json",
              query: list | None = None) -> bytes:
        return self._open(method, path, body, content_type, query).data

    def _open(self, method: str, path: str, body: dict | None = None, content_type: str = "application/json",
              query: list | None = None, timeout=None):
        headers = {"Content-Type": content_type, "Accept": "application/json"}
        try:
            params = self.api.param_serialize(method, path, query_params=query or [], header_params=headers,
                                              body=body, auth_settings=["BearerToken"])
            response = self.api.call_api(*params[:5], _request_timeout=timeout or self.timeout)
            if timeout is None or response.status >= 300:  # a watch's body is read as it streams
                response.read()
        except ApiException as exc:
            if exc.status:
                raise _failed(exc.status, f"{method} {path}", exc.body) from None
            raise Unreachable(str(exc.reason or exc)[:200]) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise Unreachable(f"{method} {path}: {exc}"[:300]) from None
        if response.status >= 300:
            raise _failed(response.status, f"{method} {path}", response.data)
        return response


class Gone(Unreachable):
    """410: the resourceVersion is too old to watch from: list again."""


class Conflict(Unreachable):
    """409: the object changed since the resourceVersion a write named."""


class NotFound(Unreachable):
    """404: no such object."""


def _failed(status: int, what: str, body) -> Unreachable:
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        text = json.loads(text).get("message", text)
    except (ValueError, AttributeError):
        pass
    kind = {410: Gone, 409: Conflict, 404: NotFound}.get(status, Unreachable)
    return kind(f"HTTP {status} on {what}: {text[:300]}")
