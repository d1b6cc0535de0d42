"""app/serve/supervise/workers.py: the leader's pool starts a worker that exited on its own again, at
most once per RESTART_SECONDS each, whatever the clock reads (a machine just booted)."""

from __future__ import annotations

from app.serve.supervise import workers


class Child:
    def __init__(self, pid: int, exited: bool = False):
        self.pid, self.returncode = pid, (1 if exited else None)

    def poll(self):
        return self.returncode


def test_an_exited_worker_is_started_again_at_most_once_a_period(monkeypatch):
    started = iter(range(100, 200))
    monkeypatch.setattr(workers, "spawn_one", lambda options, index: Child(next(started), exited=True))
    now = [0.0]  # a monotonic clock just after boot
    pool = workers.Pool("{}", 3, clock=lambda: now[0])
    pool.children = [Child(10, exited=True), Child(11)]
    told = []
    pool.restart_exited(lambda index, child: told.append((index, child.pid)))
    assert told == [(1, 10)] and pool.children[0].pid == 100 and pool.children[1].pid == 11
    now[0] = workers.RESTART_SECONDS - 0.1
    pool.restart_exited(lambda index, child: told.append((index, child.pid)))
    assert told == [(1, 10)]  # the replacement exited too: not again within the period
    now[0] = workers.RESTART_SECONDS
    pool.restart_exited(lambda index, child: told.append((index, child.pid)))
    assert told == [(1, 10), (1, 100)]
