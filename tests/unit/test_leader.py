"""Leader election's decisions (app/serve/cluster/leader.py), with an injected clock: the decision
table, the candidate's state machine round by round, and a simulation of two replicas over one
Lease with slow, lost and partitioned requests in which two leaders never overlap."""

from __future__ import annotations

import dataclasses
import random

import pytest

from app.serve.cluster.leader import Act, Candidate, Lease, Record, Role, Seen, decide, observe, released
from app.serve.settings import LeaseSettings

S = LeaseSettings(identity="a", lease_duration=4, renew_deadline=3.0, retry_period=0.5)
WALL = "2026-01-01T00:00:00.000000Z"


def lease(holder: str, transitions: int = 0, duration: int = 4, version: str = "1", renewed: str = "r0") -> Lease:
    return Lease(Record(holder, duration, "t0", renewed, transitions), version)


# (case, lease read, seen since, now) -> (act, holder written, transitions written)
DECIDE = [
    ("no Lease: create it", None, 0.0, 0.0, Act.CREATE, "a", 0),
    ("ours: renew, transitions kept", lease("a", 3), 0.0, 100.0, Act.RENEW, "a", 3),
    ("released: take at once", lease("", 3), 10.0, 10.0, Act.TAKE, "a", 4),
    ("held, seen 1 s ago: wait", lease("b", 3), 9.0, 10.0, Act.WAIT, None, None),
    ("held, just under its duration: wait", lease("b", 3), 6.01, 10.0, Act.WAIT, None, None),
    ("held, its duration passed since seen: take", lease("b", 3), 6.0, 10.0, Act.TAKE, "a", 4),
    ("held with a longer declared duration: wait", lease("b", 3, duration=30), 0.0, 10.0, Act.WAIT, None, None),
]


@pytest.mark.parametrize(("case", "read", "since", "now", "act", "holder", "transitions"), DECIDE,
                         ids=[row[0] for row in DECIDE])
def test_decide(case, read, since, now, act, holder, transitions):
    seen = Seen(read.record if read else None, since)
    decision = decide("a", read, seen, now, WALL, 4)
    assert decision.act is act
    if holder is None:
        assert decision.write is None and decision.expires_in == pytest.approx(since + read.record.duration - now)
    else:
        assert (decision.write.holder, decision.write.transitions) == (holder, transitions)
        assert decision.write.renewed == WALL and decision.write.duration == 4


def test_the_clock_restarts_only_when_the_record_changes():
    first = observe(None, lease("b").record, 1.0)
    assert observe(first, lease("b").record, 5.0) is first  # same record: still seen since 1.0
    renewed = observe(first, lease("b", renewed="r1").record, 5.0)
    assert renewed.since == 5.0
    # Only the record counts, not the resourceVersion: a label edited on the Lease proves no holder alive.
    assert observe(renewed, lease("b", renewed="r1", version="9").record, 7.0).since == 5.0


def test_release_clears_the_holder_and_keeps_the_count():
    record = released(lease("a", 7).record, WALL)
    assert (record.holder, record.transitions, record.duration) == ("", 7, 1)
    assert record.spec()["holderIdentity"] is None  # what client-go writes; kubectl shows <none>


def test_record_round_trips_through_a_spec():
    record = Record("a", 4, "t0", "t1", 2)
    assert Record.from_spec(record.spec(), 15) == record
    assert Record.from_spec({}, 15) == Record("", 15, "", "", 0)  # a Lease made by hand, spec empty


# One candidate, round by round: (now, what the GET returned, how the write went) -> role, deadline.
# "ok": the write succeeded; "conflict": 409; "down": no answer; None: no write was asked for.
ROUNDS = [
    # t, read, write outcome, role after, leading at t+0.1
    (0.0, None, "ok", Role.LEADER, True),  # created it
    (0.5, lease("a"), "ok", Role.LEADER, True),  # renewed: deadline 3.5
    (1.0, lease("a"), "down", Role.LEADER, True),  # write lost: still within the deadline
    (1.5, "down", None, Role.LEADER, True),  # GET lost too
    (3.6, "down", None, Role.STANDBY, False),  # 3.5 passed with no renewal: fenced
    (4.0, lease("a"), "ok", Role.LEADER, True),  # nobody took it meanwhile: ours again
    (4.5, lease("a"), "conflict", Role.STANDBY, False),  # someone else wrote: stop at once
    (5.0, lease("b", 1, renewed="x"), None, Role.STANDBY, False),  # b holds it
    (8.9, lease("b", 1, renewed="x"), None, Role.STANDBY, False),  # 3.9 s since b's record changed: wait
    (9.0, lease("b", 1, renewed="x"), "ok", Role.LEADER, True),  # 4 s: b's claim lapsed, taken
    (9.5, lease("c", 2, renewed="y"), None, Role.STANDBY, False),  # c took it (our write lost in transit)
]


def test_candidate_rounds():
    candidate = Candidate("a", S)
    for now, read, outcome, role, leading in ROUNDS:
        if read == "down":
            candidate.fence(now)
        else:
            decision = candidate.read(read, now, WALL)
            assert (decision.act is Act.WAIT) == (outcome is None), (now, decision)
            if outcome is not None:
                candidate.wrote(outcome == "ok", now, now + 0.05, conflict=outcome == "conflict")
            candidate.fence(now + 0.05)
        assert candidate.role is role, (now, candidate.lost_because)
        assert candidate.leading(now + 0.1) is leading, now


def test_a_write_that_succeeds_after_the_renew_deadline_gives_no_leadership():
    candidate = Candidate("a", S)
    candidate.read(None, 0.0, WALL)
    candidate.wrote(True, began=0.0, now=3.0)  # the API answered, but only at the deadline
    assert candidate.role is Role.STANDBY and not candidate.leading(3.0)
    assert "longer than the renew deadline" in candidate.lost_because


def test_leading_is_judged_per_call_even_before_the_fence_runs():
    candidate = Candidate("a", S)
    candidate.read(None, 10.0, WALL)
    candidate.wrote(True, began=10.0, now=10.2)
    assert candidate.leading(12.99)
    assert not candidate.leading(13.0)  # began + renew deadline: nobody fenced yet, still refused
    assert candidate.role is Role.LEADER and candidate.fence(13.0) and candidate.role is Role.STANDBY


SETTINGS = [
    ({}, []),
    ({"renew_deadline": 4.0}, ["renew deadline"]),
    ({"renew_deadline": 5.0}, ["renew deadline"]),
    ({"retry_period": 2.5}, ["retry period"]),  # 1.2 × 2.5 = 3 is not below 3
    ({"retry_period": 0}, ["retry period"]),
    ({"lease_duration": 0, "renew_deadline": 0.5, "retry_period": 0.1}, ["lease duration", "renew deadline"]),
    ({"identity": ""}, ["identity"]),
    ({"namespace": "Kube_System"}, ["namespace"]),
    ({"name": "bootstrap-node.leader"}, []),
    ({"name": "-x"}, ["lease name"]),
]


@pytest.mark.parametrize(("change", "named"), SETTINGS, ids=[str(c) for c, _ in SETTINGS])
def test_settings_are_checked(change, named):
    problems = dataclasses.replace(S, **change).problems()
    assert len(problems) == len(named), problems
    for problem, word in zip(problems, named, strict=True):
        assert problem.startswith(word) or word in problem, problems


def test_client_go_defaults_are_valid():
    assert LeaseSettings(identity="x").problems() == []
    assert (LeaseSettings.lease_duration, LeaseSettings.renew_deadline, LeaseSettings.retry_period) == (15, 10.0, 2.0)


# -- two replicas, one Lease, a network that is slow, lossy and sometimes cut ---------------------


@dataclasses.dataclass
class Store:
    """The API server's one Lease: a record and a version, compare-and-swap on write."""

    lease: Lease | None = None
    version: int = 0

    def write(self, record: Record, expected: str | None) -> bool:
        current = self.lease.version if self.lease else None
        if current != expected:
            return False
        self.version += 1
        self.lease = Lease(record, str(self.version))
        return True


def simulate(seed: int, steps: int = 4000, tick: float = 0.05) -> tuple[int, int]:
    """Two candidates taking turns at the Lease with random delays, losses and partitions. Asserts at
    every tick that at most one leads; returns (ticks with a leader, takeovers)."""
    rng = random.Random(seed)
    store = Store()
    names = ("a", "b")
    cands = {n: Candidate(n, dataclasses.replace(S, identity=n)) for n in names}
    next_round = {n: rng.uniform(0, S.retry_period) for n in names}
    pending: list[tuple[float, str, str, object]] = []  # (at, who, step, data)
    busy = dict.fromkeys(names, False)
    cut = dict.fromkeys(names, (0.0, 0.0))  # partitioned during [from, to)
    led = takeovers = 0
    last_leader = ""
    for i in range(steps):
        now = i * tick
        for n in names:
            if rng.random() < 0.002:  # a partition of up to 8 s
                cut[n] = (now, now + rng.uniform(0.5, 8.0))
            if not busy[n] and now >= next_round[n]:
                busy[n] = True
                pending.append((now + rng.uniform(0.0, 0.6), n, "get", now))
        due = sorted((p for p in pending if p[0] <= now), key=lambda p: p[0])
        pending = [p for p in pending if p[0] > now]
        for at, n, step, data in due:
            cand, lost = cands[n], cut[n][0] <= at < cut[n][1] or rng.random() < 0.05
            if step == "get":  # the API server reads the Lease now; the answer arrives later
                if lost:  # no answer: the round ends when the request times out
                    busy[n], next_round[n] = False, at + S.retry_period
                    continue
                pending.append((at + rng.uniform(0.0, 0.3), n, "got", (data, store.lease)))
            elif step == "got":
                began, read = data
                decision = cand.read(read, at, f"w{at:.2f}")
                if decision.act is Act.WAIT:
                    busy[n], next_round[n] = False, at + S.retry_period
                    continue
                version = read.version if read else None
                pending.append((at + rng.uniform(0.0, 0.6), n, "write", (began, decision.write, version)))
            else:
                began, record, version = data
                applied = not lost and store.write(record, version)
                # the answer may be lost even when the write was applied
                answered = applied and rng.random() > 0.05
                cand.wrote(answered, began, at + rng.uniform(0, 0.3), conflict=not applied and not lost)
                busy[n], next_round[n] = False, at + S.retry_period
        for n in names:
            cands[n].fence(now)
        leaders = [n for n in names if cands[n].leading(now)]
        assert len(leaders) <= 1, f"seed {seed}: both lead at {now:.2f}"
        if leaders:
            led += 1
            if leaders[0] != last_leader:
                takeovers += 1
                last_leader = leaders[0]
    return led, takeovers


@pytest.mark.parametrize("seed", range(20))
def test_two_replicas_never_lead_at_once(seed):
    led, takeovers = simulate(seed)
    assert led > 2000  # somebody leads most of the time: the simulation exercises leading at all
    assert takeovers >= 1
