"""Issue #17's targets, read against the Celery reference of the same run (bench/targets.py):
without servers."""

from __future__ import annotations

from bench.report import Section
from bench.targets import check


def section(mode: str, **data: object) -> Section:
    return Section(mode, mode, data=dict(data))


def verdicts(sections: list[Section]) -> dict[str, tuple[float, str]]:
    table = check(sections)
    return {
        t["target"]: (round(t["measured"], 3), t["verdict"])
        for t in table.data["targets"]
        if t["target"].startswith("#17")
    }


def test_the_waiting_clients_are_read_as_multiples_of_the_celery_designs_polling():
    found = verdicts(
        [
            section("celery", throughput_jobs_s=100.0, cpu_ms_per_job_service=10.0),
            section("polling", throughput_jobs_s=1200.0, cpu_ms_per_job_service=1.5),
            section(
                "concurrent",
                wait="prefer",
                clients=32,
                lost=0,
                throughput_jobs_s=2000.0,
                cpu_ms_per_job_service=0.7,
            ),
            section("longpoll", terminal_ms={"p50": 2.5, "p95": 6.0}),
        ]
    )
    assert found == {
        "#17 one long-poll client p50 <= 3 ms": (2.5, "met"),
        "#17 one long-poll client p95 <= 5 ms": (6.0, "missed"),
        "#17 polling clients >= 10x the Celery design's jobs/s": (12.0, "met"),
        "#17 polling clients' CPU per job <= 0.1x the Celery design's": (0.15, "missed"),
        "#17 long-poll clients >= 25x the Celery design's polling jobs/s": (20.0, "missed"),
        "#17 long-poll clients' CPU per job <= 0.8 ms": (0.7, "met"),
    }


def test_without_a_celery_run_only_the_absolute_targets_are_read():
    found = verdicts(
        [
            section("polling", throughput_jobs_s=1200.0, cpu_ms_per_job_service=1.5),
            section("longpoll", terminal_ms={"p50": 2.0, "p95": 4.0}),
        ]
    )
    assert set(found) == {
        "#17 one long-poll client p50 <= 3 ms",
        "#17 one long-poll client p95 <= 5 ms",
    }


def test_concurrent_clients_that_do_not_long_poll_are_not_read_as_long_polls():
    found = verdicts(
        [
            section("celery", throughput_jobs_s=100.0, cpu_ms_per_job_service=10.0),
            section(
                "concurrent",
                wait="get",
                clients=32,
                lost=0,
                throughput_jobs_s=2000.0,
                cpu_ms_per_job_service=0.7,
            ),
        ]
    )
    assert found == {}
