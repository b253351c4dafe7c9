"""How the bench shares load out and turns samples into numbers (no servers)."""

from __future__ import annotations

from array import array
from collections import Counter

import pytest

from bench.backlog import tenths
from bench.clients import Plan, batch_shares, job_shares
from bench.loadgen import split
from bench.options import MODES, parse
from bench.report import percentile, quantiles_ms
from bench.tally import Tally, merged


def plan(kind="wait", jobs=100, clients=8, **extra) -> Plan:
    return Plan(url="http://127.0.0.1:1", kind=kind, numbers=range(jobs), clients=clients, **extra)


@pytest.mark.parametrize(("jobs", "clients", "processes"), [(100, 8, 2), (7, 32, 3), (5, 1, 4)])
def test_every_job_goes_to_exactly_one_client_of_one_process(jobs, clients, processes):
    parts = split(plan(jobs=jobs, clients=clients), processes)
    numbers = [n for part in parts for share in job_shares(part) for n in share]
    assert sorted(numbers) == list(range(jobs))
    assert sum(part.clients for part in parts) == clients
    assert all(part.clients >= 1 for part in parts)


def test_a_plans_key_goes_to_every_process_and_never_into_its_repr():
    keyed = plan(api_key="ifk_secret")
    assert keyed.headers == (("Authorization", "Bearer ifk_secret"),)
    assert all(part.headers == keyed.headers for part in split(keyed, 3))
    assert "ifk_secret" not in repr(keyed)
    assert plan().headers == ()  # the reference endpoint takes no key


def test_batches_stay_whole_across_processes():
    parts = split(plan("batch", jobs=2500, clients=4, batch_size=1000), 2)
    batches = [b for part in parts for share in batch_shares(part) for b in share]
    assert sorted(len(b) for b in batches) == [500, 1000, 1000]
    assert sorted(n for b in batches for n in b) == list(range(2500))


def test_percentiles_are_nearest_rank():
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert quantiles_ms(values) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert percentile([0.5], 99) == 0.5
    assert percentile([], 50) != percentile([], 50)  # NaN


def test_tallies_merge_over_the_whole_run():
    first = Tally(began_at=10.0, ended_at=12.0, requests=3, refused=Counter({503: 1}))
    second = Tally(began_at=9.5, ended_at=11.0, requests=2, refused=Counter({503: 2, 429: 1}))
    total = merged([first, second])
    assert (total.began_at, total.ended_at, total.wall_s) == (9.5, 12.0, 2.5)
    assert total.requests == 5
    assert total.refused == Counter({503: 3, 429: 1})


def test_a_steady_drain_has_the_same_rate_in_every_tenth():
    outcomes = array("q", range(0, 100_000, 10))  # one outcome every 10 ms
    rates = tenths(outcomes)
    assert len(rates) == 10
    assert all(rate == pytest.approx(100, rel=0.01) for rate in rates)


def test_a_slowing_drain_shows_in_its_last_tenth():
    fast = list(range(0, 9_000, 1))  # 9,000 outcomes, 1 ms apart
    slow = list(range(9_000, 9_000 + 1_000 * 10, 10))  # 1,000 more, 10 ms apart
    rates = tenths(array("q", fast + slow))
    assert rates[-1] < rates[0] / 5


def test_modes_come_in_a_fixed_order_and_all_means_every_one():
    assert parse(["--mode", "concurrent,sequential"]).modes == ("sequential", "concurrent")
    assert parse(["--mode", "all"]).modes == MODES
    assert parse(["--env", "READ_COUNT=64", "--env", "A=b=c"]).env == {
        "READ_COUNT": "64",
        "A": "b=c",
    }
    with pytest.raises(SystemExit):
        parse(["--mode", "nonsense"])


def test_concurrent_clients_wait_one_way_at_a_time():
    assert (parse([]).poll, parse([]).prefer) == (False, False)  # GET ?wait=
    assert parse(["--prefer"]).prefer
    with pytest.raises(SystemExit):
        parse(["--poll", "--prefer"])
