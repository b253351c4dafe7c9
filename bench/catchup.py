"""Projector mode: how many events per second the live projector process applies.

The stream is filled while no projector runs (bench.rebuild's synthetic log: JobRequested,
JobStarted twice, JobSucceeded per job), then `python -m projector` starts and its checkpoint
is polled until it has read everything. The rate counts from its first batch, so process
start-up (imports, connections) is reported apart.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from bench.checkpoint import Checkpoint
from bench.memory import tree_rss_mb
from bench.options import Options
from bench.rebuild import write_log
from bench.report import Section, rate
from bench.stack import running_stack

EVENTS_PER_JOB = 4  # what write_log writes per job


def projector(work: Path, options: Options) -> Section:
    with running_stack(work, roles=(), env=options.env) as service:
        client = redis.Redis.from_url(service.env["REDIS_URL"], decode_responses=True)
        checkpoint = Checkpoint(service.env["DATABASE_URL"])
        try:
            began = time.perf_counter()
            jobs = options.projector_events // EVENTS_PER_JOB
            events = write_log(client, service.names, jobs, options.projector_chunk)
            fill_s = time.perf_counter() - began
            started = time.time()
            service.start("projector")
            samples = checkpoint.wait_entries(events, timeout_s=600 + events / 1000)
            rss = tree_rss_mb(service.procs["projector"].pid)
        finally:
            client.close()
            checkpoint.close()
    return _section(events, options.projector_chunk, fill_s, started, samples, sum(rss.values()))


def _section(
    events: int,
    chunk: int,
    fill_s: float,
    started: float,
    samples: list[tuple[float, int]],
    rss: float,
) -> Section:
    moving = [(t, n) for t, n in samples if n > 0]
    first_t, first_n = moving[0] if moving else (float("nan"), 0)
    last_t, last_n = samples[-1] if samples else (float("nan"), 0)
    live = rate(last_n - first_n, last_t - first_t)
    layout = "each job's events together" if chunk == 1 else f"jobs in chunks of {chunk}"
    title = f"projector: {events} events ({layout}), applied live after a stopped projector"
    section = Section(title, "projector")
    section.row("filled", f"{events} events in {fill_s:.1f} s (pipelined XADD, no projector)")
    section.row("applied", f"{last_n} of {events} events")
    section.row("rate", f"{live:.0f} events/s applied live (first batch to last)")
    section.row("start-up", f"{first_t - started:.2f} s from process start to first batch")
    section.row("overall", f"{rate(last_n, last_t - started):.0f} events/s including start-up")
    section.row("resident memory", f"MB: projector {rss:.0f}")
    section.data.update(
        events=events,
        chunk=chunk,
        applied=last_n,
        events_per_s=live,
        startup_s=first_t - started,
        overall_events_per_s=rate(last_n, last_t - started),
        rss_mb={"projector": {"total": rss, "processes": [rss]}},
    )
    return section
