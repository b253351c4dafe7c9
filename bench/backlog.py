"""Backlog mode: a million queued jobs must cost each job no more than an empty queue does.

1. With consumers running: single-client long-poll latency and submit latency (the baseline).
2. Consumers stopped, N JobRequested appended straight to the default lane's stream (the
   default tenant's interactive jobs; pipelined XADD, as the API writes them); the projector
   projects them; submit latency again, with N queued (in the same lane: behind the backlog).
3. Consumers started again: the drain is followed through the workers group, and probe jobs
   are submitted at even steps of it, each long-polled to its outcome.
4. Afterwards the log (every lane of it) tells, from each outcome's entry id, the drain rate in
   each tenth of the backlog: it must be flat from the first tenth to the last. Then the
   single-client long-poll again, on a log now N jobs longer.

A job's JobRequested-to-outcome time here is its wait in the queue, not its cost, so the drain
rate and the probes (jobs ahead of them / their latency) stand for the per-job cost.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import redis

from bench import loadgen
from bench.clients import Plan, text
from bench.memory import redis_used_mb
from bench.options import Options
from bench.outcomes import LaneKey, group_progress, heads, lane_streams, read_lane, settled
from bench.report import Section, ms, quantiles_ms, rate
from bench.runs import Bench, memory_rows
from bench.stack import running_stack
from bench.tally import Tally
from classifier.train import DEFAULT_VERSION
from domain.events import JobRequested
from domain.ids import new_job_id
from eventlog.entries import stream_fields
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from eventlog.positions import START, entry_ms

FILL_CHUNK = 10_000
BASELINE_JOBS = 200
STALL_S = 180.0  # no progress for this long: report what was drained and stop


def fill(client: redis.Redis, names: Names, jobs: int) -> tuple[str, str]:
    """Append `jobs` JobRequested to their lane (the default one of partition 0), pipelined;
    the first and last entry ids."""
    first = last = ""
    for start in range(0, jobs, FILL_CHUNK):
        now = datetime.now(UTC)
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(start + FILL_CHUNK, jobs)):
            event = JobRequested(
                job_id=new_job_id(), occurred_at=now, text=text(n), model_version=DEFAULT_VERSION
            )
            pipe.xadd(names.lane(0, Lane.of(event)), stream_fields(event))
        ids = pipe.execute()
        first, last = first or str(ids[0]), str(ids[-1])
    return first, last


@dataclass
class Probe:
    launched_at: float
    ahead: int  # backlog jobs not yet done when it was submitted
    tally: Tally = field(default_factory=Tally)


@dataclass
class Drain:
    started_at: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)


def _probe(bench: Bench, drain: Drain, ahead: int) -> None:
    plan = bench.plan("wait", 1, 1, wait="get", wait_s=60, job_timeout_s=24 * 3600)
    probe = Probe(time.time(), ahead)

    def run() -> None:
        probe.tally = loadgen.run(plan)

    drain.probes.append(probe)
    drain.threads.append(threading.Thread(target=run, daemon=True))
    drain.threads[-1].start()


def follow(bench: Bench, jobs: int, base: int, probes: int) -> Drain:
    """Start the consumers and watch the drain, launching probes along the way."""
    client, names, partitions = bench.redis, bench.service.names, bench.partitions
    drain = Drain(time.time())
    bench.service.start_consumers(bench.options.consumers)
    last_change = time.monotonic()
    while True:
        read, pending = group_progress(client, names, partitions)
        done = min(max(read - pending - base, 0), jobs)
        if not drain.samples or done != drain.samples[-1][1]:
            last_change = time.monotonic()
        drain.samples.append((time.time(), done))
        if len(drain.probes) < probes and done >= (len(drain.probes) + 0.5) * jobs / probes:
            _probe(bench, drain, jobs - done)  # one per sample, so no two share a moment
        if done >= jobs and settled(client, names, partitions):
            break
        if time.monotonic() - last_change > STALL_S:
            print(f"backlog: no progress for {STALL_S:.0f} s, stopping at {done}/{jobs}")
            break
        time.sleep(1.0)
    for thread in drain.threads:
        thread.join()
    return drain


@dataclass
class Scan:
    terminal_ms: array[int] = field(default_factory=lambda: array("q"))
    failed: int = 0
    retried: int = 0


def scan(
    client: redis.Redis,
    names: Names,
    partitions: int,
    after: dict[LaneKey, str],
    others: Collection[str],
) -> Scan:
    """Outcome times of the backlog's jobs: every job of every lane after `after` (where the
    lanes ended before the fill; a lane found since is read whole) but the `others`."""
    found = Scan()
    for key, stream in lane_streams(client, names, partitions).items():
        for chunk in read_lane(client, stream, after.get(key, START)):
            for entry_id, fields in chunk:
                kind = fields.get("type")
                if fields.get("job_id") in others:
                    continue  # a probe's outcome can come long after the backlog's, skewing it
                if kind in ("JobSucceeded", "JobFailed"):
                    found.terminal_ms.append(entry_ms(entry_id))
                    found.failed += kind == "JobFailed"
                elif kind == "JobRetrying":
                    found.retried += 1
    return found


def tenths(terminal_ms: array[int]) -> list[float]:
    """Jobs per second within each tenth of the outcomes, in order."""
    ordered = sorted(terminal_ms)
    rates = []
    for k in range(10):
        part = ordered[k * len(ordered) // 10 : (k + 1) * len(ordered) // 10]
        rates.append(rate(len(part), (part[-1] - part[0]) / 1000) if len(part) > 1 else 0.0)
    return rates


def _longpoll(bench: Bench) -> Tally:
    jobs = min(bench.options.longpoll_jobs, BASELINE_JOBS)
    plan: Plan = bench.plan("wait", jobs, 1, wait="prefer", wait_s=bench.options.wait_s)
    return bench.measure(plan).tally


def _submits(bench: Bench) -> Tally:
    return loadgen.run(bench.plan("submit", BASELINE_JOBS, 1))


def backlog(work: Path, options: Options) -> Section:
    with running_stack(work, options.consumers, options.api_workers, env=options.env) as service:
        bench = Bench(service, options)
        try:
            return _run(bench, options.backlog_jobs)
        finally:
            bench.close()


def _run(bench: Bench, jobs: int) -> Section:
    # One server: the backlog is filled straight into partition 0's default lane; everything
    # is read from every lane of every partition.
    client, names, o = cast(redis.Redis, bench.redis), bench.service.names, bench.options
    partitions = bench.partitions
    section = Section(f"backlog: {jobs} queued jobs, {o.consumers} consumer(s)", "backlog")
    bench.warm_up()
    before_poll, before_submit = _longpoll(bench), _submits(bench)
    memory = {"start": redis_used_mb(client)}
    for i in range(o.consumers):
        bench.service.stop(f"consumer-{i}")
    before_fill = heads(client, names, partitions)
    began = time.time()
    _first, last = fill(client, names, jobs)
    fill_s = time.time() - began
    memory["filled"] = redis_used_mb(client)
    filled = {(0, DEFAULT_LANE.name): last}
    projected_at = bench.checkpoint.wait_past(filled, timeout_s=600 + jobs / 1000)
    projector_s = (projected_at or float("nan")) - began
    queued_submit = _submits(bench)
    filled_rss = bench.memory_mb()
    base = group_progress(client, names, partitions)[0]
    drain = follow(bench, jobs, base, o.backlog_probes)
    probes = {j for probe in drain.probes for j in probe.tally.accepted}
    found = scan(client, names, partitions, before_fill, {*queued_submit.accepted, *probes})
    # Measured on the long log, not on a projector still busy with the backlog's outcomes.
    ends = heads(client, names, partitions)
    caught_up = bench.checkpoint.wait_past(ends, timeout_s=600 + jobs / 500)
    after_poll = _longpoll(bench)
    memory["drained"] = redis_used_mb(client)
    _fill_rows(section, jobs, fill_s, projector_s, memory)
    _latency_rows(section, before_submit, queued_submit, before_poll, after_poll)
    _drain_rows(section, jobs, drain, found)
    behind = (caught_up or float("nan")) - drain.started_at
    section.row("projected", f"every outcome {behind:.1f} s after the consumers started")
    section.data["projected_s"] = behind
    _probe_rows(section, drain)
    section.row("resident memory, filled", _rss_text(filled_rss))
    memory_rows(section, bench.memory_mb())
    return section


def _rss_text(rss: dict[str, dict[int, float]]) -> str:
    return "MB: " + "; ".join(f"{n} {sum(p.values()):.0f}" for n, p in rss.items())


def _fill_rows(
    section: Section, jobs: int, fill_s: float, projector_s: float, memory: dict[str, float]
) -> None:
    section.row("filled", f"{jobs} JobRequested in {fill_s:.1f} s ({rate(jobs, fill_s):.0f}/s)")
    section.row(
        "projected",
        f"the backlog in {projector_s:.1f} s from the first append "
        f"({rate(jobs, projector_s):.0f} events/s while filling and after)",
    )
    section.row("redis memory", "MB: " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    section.data.update(jobs=jobs, fill_s=fill_s, projector_s=projector_s, redis_mb=memory)


def _latency_rows(
    section: Section, empty: Tally, queued: Tally, before: Tally, after: Tally
) -> None:
    section.row("submit p50/95/99, empty queue", f"{ms(empty.submit_s)} ms (consumers running)")
    section.row("submit p50/95/99, backlog queued", f"{ms(queued.submit_s)} ms (consumers stopped)")
    section.row("long-poll p50/95/99, before", f"{ms(before.terminal_s)} ms (1 client)")
    section.row("long-poll p50/95/99, after drain", f"{ms(after.terminal_s)} ms (1 client)")
    section.data.update(
        submit_empty_ms=quantiles_ms(empty.submit_s),
        submit_queued_ms=quantiles_ms(queued.submit_s),
        longpoll_before_ms=quantiles_ms(before.terminal_s),
        longpoll_after_ms=quantiles_ms(after.terminal_s),
    )


def _drain_rows(section: Section, jobs: int, drain: Drain, found: Scan) -> None:
    outcomes = found.terminal_ms
    end_s = (max(outcomes) / 1000 if outcomes else drain.started_at) - drain.started_at
    by_tenth = tenths(outcomes)
    flat = by_tenth[-1] / by_tenth[0] if by_tenth and by_tenth[0] else float("nan")
    settled_s = drain.samples[-1][0] - drain.started_at if drain.samples else float("nan")
    section.row(
        "drain",
        f"{len(outcomes)} outcomes in {end_s:.1f} s = {rate(len(outcomes), end_s):.0f} jobs/s",
    )
    section.row("drain by tenths", "jobs/s: " + " ".join(f"{r:.0f}" for r in by_tenth))
    section.row("last tenth / first", f"{flat:.2f} (flat is 1.00)")
    section.row("settled", f"{settled_s:.1f} s after the consumers started (all entries acked)")
    section.row("failed / retries", f"{found.failed} failed, {found.retried} JobRetrying events")
    section.row("lost jobs", f"{max(jobs - len(outcomes), 0)} of the backlog (no outcome)")
    section.data.update(
        drain_s=end_s,
        drain_rate=rate(len(outcomes), end_s),
        drain_tenths=by_tenth,
        flatness=flat,
        settled_s=settled_s,
        failed=found.failed,
        retrying_events=found.retried,
        lost=max(jobs - len(outcomes), 0),
    )


def _probe_rows(section: Section, drain: Drain) -> None:
    rows = []
    for probe in drain.probes:
        latency = probe.tally.terminal_s[0] if probe.tally.terminal_s else float("nan")
        rows.append({
            "at_s": probe.launched_at - drain.started_at,
            "ahead": probe.ahead,
            "latency_s": latency,
            "ahead_per_s": rate(probe.ahead, latency),
        })  # fmt: skip
        section.row(
            f"probe at {rows[-1]['at_s']:.0f} s",
            f"{probe.ahead} jobs ahead, outcome after {latency:.1f} s "
            f"({rows[-1]['ahead_per_s']:.0f} jobs ahead per second)",
        )
    section.data["probes"] = rows
