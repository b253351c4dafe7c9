"""The fairness mode's arithmetic (bench/fairness.py) and its targets (no servers)."""

from __future__ import annotations

import math

import pytest

from bench.fairness import (
    Parts,
    breakdown,
    drain_rates,
    latency_ms,
    packed,
    projected_times,
    round_ratios,
    summary,
)
from bench.options import MODES, parse
from bench.report import Section
from bench.tally import Tally, merged
from bench.targets import check

LANE = (0, "bulk:tenant-a")
OTHER = (1, "bulk:tenant-a")


def test_packed_positions_keep_the_order_of_entry_ids():
    ids = [(1000, 0), (1000, 1), (1000, 999), (1001, 0), (1002, 5)]
    assert [packed(i) for i in ids] == sorted(packed(i) for i in ids)
    assert packed((1000, 0)) < packed((1000, 1)) < packed((1001, 0))


def test_each_outcome_is_projected_at_the_first_sample_past_it():
    outcomes = [packed((100, 0)), packed((100, 1)), packed((105, 0)), packed((120, 3))]
    samples = [
        (1.0, {}),  # no checkpoint for the lane yet
        (1.1, {LANE: (100, 0), OTHER: (500, 0)}),
        (1.2, {LANE: (104, 9)}),  # the lane's checkpoint moved past the second
        (1.3, {LANE: (110, 0)}),
        (1.4, {LANE: (110, 0)}),
    ]
    # The last outcome was never passed: it is left out, not timed.
    assert projected_times(outcomes, samples, LANE) == [1.1, 1.2, 1.3]
    assert projected_times([], samples, LANE) == []


def test_a_steady_drain_has_one_rate_end_to_end_in_the_middle_and_by_tenths():
    # 1,000 jobs, one projected every 10 ms from 0.01 s after the first submission.
    projected = [10.0 + (i + 1) * 0.01 for i in range(1000)]
    rates = drain_rates(10.0, projected)
    assert rates.jobs == 1000
    assert rates.seconds == pytest.approx(10.0)
    assert rates.end_to_end == pytest.approx(100, rel=0.01)
    assert rates.steady == pytest.approx(100, rel=0.01)
    assert rates.tenths == pytest.approx([100.0] * 10, rel=0.01)


def test_a_slow_start_lowers_the_end_to_end_rate_but_not_the_steady_one():
    # Nothing projected for the first 5 s (accepting, the first rounds), then 100 jobs/s.
    projected = [15.0 + i * 0.01 for i in range(1000)]
    rates = drain_rates(10.0, sorted(projected, reverse=True))  # any order
    assert rates.end_to_end == pytest.approx(1000 / 14.99, rel=0.01)
    assert rates.steady == pytest.approx(100, rel=0.02)
    assert rates.tenths[0] < rates.tenths[5] / 4


def test_no_projection_gives_no_rates():
    rates = drain_rates(10.0, [])
    assert rates.jobs == 0
    assert math.isnan(rates.end_to_end)
    assert math.isnan(rates.steady)


def test_latency_has_its_count_percentiles_and_maximum():
    found = latency_ms([i / 1000 for i in range(1, 101)])
    assert found == {"count": 100, "p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    assert latency_ms([])["count"] == 0


def test_latencies_are_picked_by_when_their_request_started():
    first = Tally(terminal_s=[0.01, 0.02], terminal_at=[100.0, 105.0], terminal_ids=["a", "b"])
    second = Tally(terminal_s=[0.03, 0.04], terminal_at=[99.0, 110.5], terminal_ids=["c", "d"])
    both = merged([first, second])
    assert both.terminal_between(100.0, 110.0) == [0.01, 0.02]
    assert sorted(both.terminal_between(0, 200)) == [0.01, 0.02, 0.03, 0.04]
    assert both.jobs_between(105.0, 111.0) == [("b", 0.02, 105.0), ("d", 0.04, 110.5)]
    assert len(both.jobs_between()) == 4


def test_a_jobs_time_is_split_into_its_parts_and_the_tail_is_described():
    # 95 quick jobs, and 5 slow ones that waited for a consumer.
    quick = [Parts(0.010, accepted=0.001, queued=0.002, worked=0.001, projected=0.004)] * 95
    slow = [Parts(0.100, accepted=0.001, queued=0.080, worked=0.001, projected=0.004)] * 5
    found = breakdown(quick + slow)
    assert found["client"]["p50"] == 10.0
    assert found["queued"]["p50"] == 2.0
    assert found["answered"]["p50"] == pytest.approx(2.0)
    assert found["slowest"]["count"] == 5
    assert found["slowest"]["queued"] == pytest.approx(80.0)
    assert found["slowest"]["answered"] == pytest.approx(14.0)
    assert math.isnan(breakdown([])["slowest"]["queued"])


def run(round_no: int, with_b: bool, rate: float, b_p95: float = 20.0) -> dict:
    data: dict = {
        "round": round_no,
        "with_b": with_b,
        "a": {"end_to_end": rate, "steady": rate * 1.2},
        "cpu_ms_per_job": {"api": 0.05, "projector": 0.15, "load_client": 0.01},
    }
    if with_b:
        data["b"] = {"count": 500, "p50": 10.0, "p95": b_p95, "p99": 60.0, "max": 90.0}
    else:
        data["b_idle"] = {"count": 400, "p50": 5.0, "p95": 8.0, "p99": 9.0, "max": 12.0}
    return data


def verdicts(summary_section: Section) -> dict[str, str]:
    table = check([summary_section])
    return {t["target"]: t["verdict"] for t in table.data["targets"] if "#15" in t["target"]}


def test_the_summary_compares_the_runs_and_the_targets_read_it():
    section = summary(parse([]), [run(1, False, 4000.0), run(1, True, 3800.0, b_p95=42.0)])
    assert section.mode == "fairness"
    assert section.data["a_ratio"] == pytest.approx(0.95)
    assert section.data["a_steady_ratio"] == pytest.approx(0.95)
    assert section.data["b_p95_ms"] == 42.0
    assert section.data["b_idle_ms"]["p95"] == 8.0
    assert section.data["cpu_ms_per_job_alone"] == pytest.approx(0.21)
    assert set(verdicts(section).values()) == {"met"}


def test_a_slow_drain_beside_b_or_a_slow_b_misses():
    slow_a = summary(parse([]), [run(1, False, 4000.0), run(1, True, 3000.0)])
    assert sorted(verdicts(slow_a).values()) == ["met", "missed"]  # 0.75 < 0.9; p95 20 ms
    slow_b = summary(parse([]), [run(1, False, 4000.0), run(1, True, 4000.0, b_p95=51.0)])
    assert sorted(verdicts(slow_b).values()) == ["met", "missed"]


def test_rounds_are_summed_up_by_their_medians_and_compared_round_by_round():
    runs = [
        run(1, False, 4000.0),
        run(1, True, 3600.0),
        run(2, True, 3900.0),
        run(2, False, 4200.0),
        run(3, False, 3000.0),  # a slow round for both
        run(3, True, 2900.0),
    ]
    section = summary(parse([]), runs)
    assert section.data["rounds"] == 3
    assert section.data["a_rate_alone"] == 4000.0
    assert section.data["a_rate_with_b"] == 3600.0
    assert round_ratios(runs) == pytest.approx([0.9, 3900 / 4200, 2900 / 3000])


def test_an_unmeasured_run_is_not_measured_rather_than_met():
    section = summary(parse([]), [run(1, False, float("nan"))])
    assert set(verdicts(section).values()) == {"not measured"}


def test_fairness_is_a_mode_of_its_own_with_its_sizes():
    assert "fairness" in MODES
    assert parse(["--mode", "fairness"]).modes == ("fairness",)
    defaults = parse([])
    assert (defaults.fairness_jobs, defaults.fairness_clients) == (100_000, 4)
    assert (defaults.fairness_wait_s, defaults.fairness_rounds) == (30, 1)
    assert parse(["--fairness-jobs", "1000000"]).fairness_jobs == 1_000_000
