"""The performance targets of issues #6 and #17 (and #15's fairness), checked against this
run; #17's against the Celery reference measured in the same run."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from bench.report import Section

# Last tenth of a drained backlog against the first: "flat" allows this much noise.
FLAT_WITHIN = 0.9
RSS_LIMIT_MB = 150.0
# Issue #15: B's single jobs under A's bulk backlog, and A's drain beside them.
FAIR_P95_MS = 50.0
FAIR_RATIO = 0.9
# Issue #17: as multiples of the Celery design's polling clients, and absolute.
POLLING_X = 10.0
POLLING_CPU_X = 0.1
LONGPOLL_X = 25.0
LONGPOLL_CPU_MS = 0.8
ONE_CLIENT_P50_MS = 3.0
ONE_CLIENT_P95_MS = 5.0


def _runs(sections: Iterable[Section], mode: str) -> list[dict[str, Any]]:
    return [s.data for s in sections if s.mode == mode]


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")


def _largest(sections: Iterable[Section], role: Callable[[str], bool]) -> float:
    sizes = [
        mb
        for s in sections
        for name, p in s.data.get("rss_mb", {}).items()
        if role(name)
        for mb in p["processes"]
    ]
    return max(sizes, default=float("nan"))


def check(sections: list[Section]) -> Section:
    table = Section("targets (issues #6, #15, #17)", "targets")
    results: list[dict[str, Any]] = []

    def target(name: str, measured: float, unit: str, ok: bool) -> None:
        if math.isnan(measured):
            table.row(name, "not measured")
        else:
            digits = 2 if unit in ("", "x") else 1 if unit in ("ms", "MB") else 0
            shown = f"{measured:.{digits}f}"
            table.row(name, f"{shown}{' ' + unit if unit else ''}: {'met' if ok else 'MISSED'}")
        verdict = "not measured" if math.isnan(measured) else ("met" if ok else "missed")
        results.append({"target": name, "measured": measured, "unit": unit, "verdict": verdict})

    for run in _runs(sections, "concurrent"):
        rate, lost = _number(run.get("throughput_jobs_s")), run.get("lost")
        target(f"{run['clients']} clients >= 1000 jobs/s, 0 lost ({lost} lost)", rate, "jobs/s",
               rate >= 1000 and lost == 0)  # fmt: skip
    for run in _runs(sections, "longpoll"):
        p50, p95 = (_number(run["terminal_ms"][q]) for q in ("p50", "p95"))
        target(f"#17 one long-poll client p50 <= {ONE_CLIENT_P50_MS:g} ms", p50, "ms",
               p50 <= ONE_CLIENT_P50_MS)  # fmt: skip
        target(f"#17 one long-poll client p95 <= {ONE_CLIENT_P95_MS:g} ms", p95, "ms",
               p95 <= ONE_CLIENT_P95_MS)  # fmt: skip
    celery = next((s.data for s in sections if s.mode == "celery"), None)
    if celery is not None:
        _against_celery(sections, celery, target)
    for run in _runs(sections, "batch"):
        rate = _number(run.get("throughput_jobs_s"))
        target("batch >= 20000 jobs/s end to end", rate, "jobs/s", rate >= 20_000)
    for run in _runs(sections, "projector"):
        rate = _number(run.get("events_per_s"))
        target("projector >= 20000 events/s live", rate, "events/s", rate >= 20_000)
    for run in _runs(sections, "backlog"):
        flat = _number(run.get("flatness"))
        target(f"backlog drain flat (last/first tenth >= {FLAT_WITHIN})", flat, "",
               flat >= FLAT_WITHIN)  # fmt: skip
    for run in _runs(sections, "fairness"):
        p95, share = _number(run.get("b_p95_ms")), _number(run.get("a_ratio"))
        target(f"#15 B p95 <= {FAIR_P95_MS:.0f} ms under A's backlog", p95, "ms",
               p95 <= FAIR_P95_MS)  # fmt: skip
        target(f"#15 A drains >= {FAIR_RATIO:.0%} of its rate alone (with B / alone)", share,
               "", share >= FAIR_RATIO)  # fmt: skip
    api = _largest(sections, lambda name: name == "api")
    consumer = _largest(sections, lambda name: name.startswith("consumer"))
    target("api process < 150 MB (largest)", api, "MB", api < RSS_LIMIT_MB)
    target("consumer process < 150 MB (largest)", consumer, "MB", consumer < RSS_LIMIT_MB)
    table.data["targets"] = results
    return table


def _against_celery(
    sections: list[Section], celery: dict[str, Any], target: Callable[[str, float, str, bool], None]
) -> None:
    """Issue #17: the polling clients and the long-poll clients (32 each) against the Celery
    design's polling clients, measured in this run."""
    c_rate = _number(celery.get("throughput_jobs_s"))
    c_cpu = _number(celery.get("cpu_ms_per_job_service"))
    for run in _runs(sections, "polling"):
        rate_x = _number(run.get("throughput_jobs_s")) / c_rate
        cpu_x = _number(run.get("cpu_ms_per_job_service")) / c_cpu
        target(f"#17 polling clients >= {POLLING_X:g}x the Celery design's jobs/s", rate_x, "x",
               rate_x >= POLLING_X)  # fmt: skip
        target(f"#17 polling clients' CPU per job <= {POLLING_CPU_X:g}x the Celery design's",
               cpu_x, "x", cpu_x <= POLLING_CPU_X)  # fmt: skip
    for run in _runs(sections, "concurrent"):
        if run.get("wait") != "prefer":
            continue
        rate_x = _number(run.get("throughput_jobs_s")) / c_rate
        cpu_ms = _number(run.get("cpu_ms_per_job_service"))
        target(f"#17 long-poll clients >= {LONGPOLL_X:g}x the Celery design's polling jobs/s",
               rate_x, "x", rate_x >= LONGPOLL_X)  # fmt: skip
        target(f"#17 long-poll clients' CPU per job <= {LONGPOLL_CPU_MS:g} ms", cpu_ms, "ms",
               cpu_ms <= LONGPOLL_CPU_MS)  # fmt: skip
