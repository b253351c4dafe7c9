"""The Celery reference under the polling clients, and every waiting mode of ours beside it:
"N x the Celery design" for jobs/s and CPU per job, both measured in the same bench run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench import cpu, loadgen
from bench.celeryref.service import celery_service
from bench.clients import Kind, Plan
from bench.endtoend import polling_plan
from bench.options import Options
from bench.report import Section, ms, quantiles_ms, rate
from bench.runs import client_rows, cpu_row, memory_rows, submission_rows
from eventlog.connection import is_cluster

CELERY_MODE = "celery"
COMPARED = ("polling", "concurrent")  # our modes set beside the Celery design's polling


def celery_polling(work: Path, o: Options, redis_url: str, postgres_url: str) -> Section:
    """The polling clients against the Celery reference, started for this run and stopped."""
    with celery_service(redis_url, postgres_url, work, o.celery_concurrency, o.celery_pool) as svc:
        used = [0]  # job numbers go on across runs, as bench.runs.Bench.plan's

        def plan(kind: Kind, jobs: int, clients: int, **extra: Any) -> Plan:
            first = used[0]
            used[0] += jobs
            return Plan(svc.url, kind, range(first, first + jobs), clients, **extra)

        if o.warmup:
            loadgen.run(plan("wait", o.warmup, 4, wait="poll", poll_s=o.poll_ms / 1000))
        measured = polling_plan(plan, o)
        servers = cpu.Servers.of(redis_url, is_cluster(redis_url), svc.database_url)
        before = cpu.sample(svc.roles(), servers)
        tally = loadgen.run(measured, o.load_procs)
        busy = cpu.spent(before, cpu.sample(svc.roles(), servers))
        stored = svc.statuses(tally.accepted)
        rss = svc.memory_mb()
    title = (
        f"Celery reference, polling: {o.clients} clients, {o.jobs} jobs, submit then poll every "
        f"{o.poll_ms:g} ms (uvicorn 1 worker; celery worker, {o.celery_pool} pool, "
        f"{o.celery_concurrency} slots)"
    )
    section = Section(title, CELERY_MODE)
    submission_rows(section, tally)
    terminal = sum(1 for s in stored.values() if s in ("succeeded", "failed"))
    succeeded = sum(1 for s in stored.values() if s == "succeeded")
    lost = len(tally.accepted) - terminal
    throughput = rate(len(tally.terminal_s), tally.wall_s)
    section.row("success rate", f"{succeeded} succeeded of {len(tally.accepted)} accepted")
    section.row("throughput", f"{throughput:.0f} jobs/s end to end")
    section.row("submit p50/95/99", f"{ms(tally.submit_s)} ms")
    section.row("to terminal p50/95/99", f"{ms(tally.terminal_s)} ms (client: submit to terminal)")
    section.row("lost jobs", f"{lost} (accepted, not terminal in its database)")
    client_rows(section, tally, o.load_procs)
    cpu_row(section, busy, terminal, tally.cpu_s)
    memory_rows(section, rss)
    section.data.update(
        clients=o.clients,
        jobs=o.jobs,
        pool=o.celery_pool,
        concurrency=o.celery_concurrency,
        throughput_jobs_s=throughput,
        submit_ms=quantiles_ms(tally.submit_s),
        terminal_ms=quantiles_ms(tally.terminal_s),
        succeeded=succeeded,
        lost=lost,
    )
    return section


def side_by_side(sections: list[Section]) -> Section | None:
    """Each of our waiting modes as a multiple of the Celery design's polling; None without a
    Celery run or a mode to compare."""
    celery = next((s for s in sections if s.mode == CELERY_MODE), None)
    ours = [s for s in sections if s.mode in COMPARED and "throughput_jobs_s" in s.data]
    if celery is None or not ours:
        return None
    section = Section("side by side: InferFlow and the Celery design, this run", "side-by-side")
    c_rate = celery.data["throughput_jobs_s"]
    c_cpu = celery.data.get("cpu_ms_per_job_service", math.nan)
    c_p50 = celery.data["terminal_ms"]["p50"]
    section.row(
        "Celery design, polling",
        f"{c_rate:.0f} jobs/s, p50 {c_p50:.1f} ms, {c_cpu:.2f} ms of CPU per job",
    )
    compared = []
    for s in ours:
        rate_x = _ratio(s.data["throughput_jobs_s"], c_rate)
        cpu_ms = s.data.get("cpu_ms_per_job_service", math.nan)
        cpu_x = _ratio(cpu_ms, c_cpu)
        section.row(
            s.title.split(":")[0] + ": " + s.title.split(", ", 2)[-1],
            f"{s.data['throughput_jobs_s']:.0f} jobs/s = {rate_x:.1f} x the Celery design; "
            f"p50 {s.data['terminal_ms']['p50']:.1f} ms; CPU per job {cpu_ms:.2f} ms = "
            f"{cpu_x:.2f} x the Celery design's",
        )
        compared.append(
            {"title": s.title, "jobs_s_x_celery": rate_x, "cpu_per_job_x_celery": cpu_x}
        )
    section.data.update(
        celery={"jobs_s": c_rate, "cpu_ms_per_job": c_cpu, "p50_ms": c_p50}, compared=compared
    )
    return section


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference and not math.isnan(reference) else math.nan
