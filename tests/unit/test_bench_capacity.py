"""The capacity benchmark's search and rows (bench/capacity.py): the rate search finds the limit a
fake server has, stops at its floor and ceiling, and the rows carry the fields independent checks
read. No server and no timing: the servers are functions of the rate."""

import pytest

from bench import capacity


def run(search: capacity.RateSearch, holds) -> capacity.RateSearch:
    while (rate := search.next_rate()) is not None:
        search.record(rate, holds(rate))
    return search


@pytest.mark.parametrize("limit", [7, 63, 200, 731, 2999])
def test_the_search_brackets_then_bisects_to_within_its_precision(limit):
    search = run(capacity.RateSearch(start=200, floor=5, ceiling=4000, precision=1.15), lambda r: r <= limit)
    assert search.result <= limit < search.result * 1.15 + 1
    assert not search.capped and len(search.steps) <= search.max_steps


def test_a_server_that_holds_not_even_the_floor_scores_zero():
    search = run(capacity.RateSearch(start=200, floor=5), lambda r: False)
    assert search.result == 0 and search.steps[-1] == (5, False)


def test_a_server_past_the_ceiling_is_reported_capped_not_measured():
    search = run(capacity.RateSearch(start=200, ceiling=1000), lambda r: True)
    assert search.result == 1000 and search.capped


def test_a_noisy_step_that_contradicts_the_bracket_reopens_it():
    search = capacity.RateSearch(start=100, precision=1.15)
    search.record(100, True)
    search.record(200, False)
    search.record(141, True)
    search.record(120, False)  # below a rate that held: the held bound is dropped, not trusted
    assert search.held is None and search.failed == 120 and search.next_rate() == 60


def test_the_search_gives_up_after_its_step_budget():
    # precision 1.0 is never reached: only the budget ends it
    search = run(capacity.RateSearch(start=100, precision=1.0, max_steps=9), lambda r: r <= 731)
    assert len(search.steps) == 9 and 700 < search.result <= 731


def step(**over):
    base = {"sent": 100, "answered": 100, "errors": 0, "timeouts": 0, "statuses": {"200": 100}, "p99_ms": 4.0,
            "api_cpu_s": 0.30, "api_s": 2.0}
    return {**base, **over}


@pytest.mark.parametrize("bad", [{"p99_ms": 10.0}, {"answered": 99}, {"errors": 1}, {"timeouts": 1},
                                 {"statuses": {"200": 99, "404": 1}}, {"p99_ms": None}])
def test_a_step_holds_only_if_all_answered_2xx_under_10_ms(bad):
    assert capacity.held(step())
    assert not capacity.held(step(**bad))


def test_a_looser_bound_is_searched_and_the_target_read_from_the_same_steps():
    assert capacity.held(step(p99_ms=30.0), 50.0) and not capacity.held(step(p99_ms=30.0), capacity.TARGET_MS)


def test_cpu_per_request_subtracts_what_the_downloads_alone_cost():
    assert capacity.cpu_per_1000(step(), 0.0) == 3.0
    assert capacity.cpu_per_1000(step(), 0.05) == 2.0  # 0.30 s - 0.05 s/s x 2 s, per 100 answered
    assert capacity.cpu_per_1000(step(answered=0), 0.0) is None


def rep(rps, cpu):
    return {"rps": rps, "rps_target": rps // 2, "capped": False, "cpu": cpu, "cpu_at_rps": rps, "p99": 5.0, "late": 0.1, "load1": 1.0, "download_MiBps": None,
            "alone_MiBps": None, "kept": None, "steps": [(rps, True)]}


def test_rows_carry_the_fields_checks_read_and_ratios_against_matchbox():
    rows = capacity.with_ratios([
        capacity.row(("bootstrap-node", 1), 100, 0, [rep(900, 0.5), rep(1100, 0.7), rep(1000, 0.6)], ""),
        capacity.row(("matchbox", 1), 100, 0, [rep(500, 0.3), rep(400, 0.3)], "v0.11.0"),
        capacity.row(("matchbox", 1), 1000, 0, [rep(0, None)], "v0.11.0"),
        capacity.row(("bootstrap-node", 1), 1000, 0, [rep(800, 0.5)], "")])
    for r in rows:
        assert {"server", "workers", "groups", "downloads", "max_rps_p99_under_10ms", "cpu_s_per_1000"} <= set(r)
        assert r["server"] in ("bootstrap-node", "matchbox")
    ours = rows[0]
    assert ours["max_rps_p99_under_bound"] == 1000 and ours["max_rps_each"] == [900, 1100, 1000]
    assert ours["max_rps_p99_under_10ms"] == 500 and ours["p99_bound_ms"] == capacity.P99_MS
    assert ours["steps_each"] == ["900+", "1100+", "1000+"]
    assert ours["rps_vs_matchbox"] == 2.22 and ours["cpu_vs_matchbox"] == 2.0
    assert rows[3]["rps_vs_matchbox"] == "inf" and "cpu_vs_matchbox" not in rows[3]


def test_a_partial_run_replaces_only_its_own_rows():
    old = [capacity.row(("bootstrap-node", 1), g, 0, [rep(100, 1.0)], "") for g in (10, 100)] + \
        [capacity.row(("matchbox", 1), g, 0, [rep(50, 2.0)], "v") for g in (10, 100)]
    old.append(capacity.row(("bootstrap-node", 1), 10, 64, [rep(70, 1.0)], ""))
    new = [capacity.row(("bootstrap-node", 1), 10, 0, [rep(300, 1.0)], "")]
    rows = capacity.merged(old, new)
    assert [(r["groups"], r["downloads"], r["server"], r["max_rps_p99_under_bound"]) for r in rows] == [
        (10, 0, "bootstrap-node", 300), (10, 0, "matchbox", 50), (10, 64, "bootstrap-node", 70),
        (100, 0, "bootstrap-node", 100), (100, 0, "matchbox", 50)]
    assert rows[0]["rps_vs_matchbox"] == 6.0
