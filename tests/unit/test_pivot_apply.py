"""app/pivot/apply.py without a server: each rendered kind's resource path, and the retry bound of a
call (clock and sleep injected: no real waiting)."""

from __future__ import annotations

import pytest

from app.pivot.apply import RESOURCES, Sender, Unreachable, path_of
from app.wait import kube
from tests.unit.test_pivot_manifests import objects, state  # noqa: F401  (fixtures)


@pytest.mark.parametrize("obj, path", [
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "p"}}, "/api/v1/namespaces/p"),
    ({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "p"}},
     "/api/v1/namespaces/p/secrets/s"),
    ({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a:b"}},
     "/apis/rbac.authorization.k8s.io/v1/clusterroles/a:b"),
    ({"apiVersion": "bootstrap-node.io/v1alpha1", "kind": "Machine", "metadata": {"name": "cp-1", "namespace": "p"}},
     "/apis/bootstrap-node.io/v1alpha1/namespaces/p/machines/cp-1"),
])
def test_resource_paths(obj, path):
    assert path_of(obj) == path


def test_every_rendered_kind_has_a_path(objects):  # noqa: F811
    assert {(o["apiVersion"], o["kind"]) for o in objects} == set(RESOURCES)


class Clock:
    def __init__(self):
        self.now, self.slept = 100.0, []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_a_transient_failure_is_retried_then_succeeds():
    clock, answers = Clock(), [kube.Transient("refused"), kube.Transient("refused"), "ok"]

    def call():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    sender = Sender(None, 10, sleep=clock.sleep, poll=1.0, clock=lambda: clock.now)
    assert sender._retry(call, "GET /readyz") == "ok" and clock.slept == [1.0, 1.0]


def test_retrying_stops_at_the_timeout_of_each_call():
    clock = Clock()

    def never():
        raise kube.Transient("connection refused")
    sender = Sender(None, 5, sleep=clock.sleep, poll=1.0, clock=lambda: clock.now)
    with pytest.raises(Unreachable, match="GET /readyz: connection refused"):
        sender._retry(never, "GET /readyz")
    assert len(clock.slept) == 6  # 1 s polls until past the 5 s
    clock.slept.clear()
    with pytest.raises(Unreachable):  # the next call has its own 5 s, not what was left of the first's
        sender._retry(never, "GET /readyz")
    assert len(clock.slept) == 6


def test_a_fatal_answer_is_not_retried():
    clock = Clock()

    def refused():
        raise kube.Forbidden("PATCH /api/v1/namespaces/p: HTTP 403: forbidden")
    with pytest.raises(kube.Forbidden):
        Sender(None, 5, sleep=clock.sleep, clock=lambda: clock.now)._retry(refused, "PATCH")
    assert clock.slept == []
