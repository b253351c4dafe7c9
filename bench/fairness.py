"""Fairness mode (issue #15): "while tenant A's 1,000,000-job bulk backlog drains, tenant B's
single jobs with `Prefer: wait` keep p95 at most 50 ms and tenant A's backlog still drains at no
less than 90 % of its rate alone."

Measured as users meet it, side by side in one bench run, each run on a fresh stack (a fresh
database and key prefix, so neither run inherits the other's rows or log):

- run 1, the reference: first tenant B's clients on the idle stack (B's latency with no
  backlog); then tenant A alone posts N jobs in batches (`--batch-size` items, `--batch-clients`
  clients, as fast as the API takes them) while the consumers and the projector run, and its
  drain is timed;
- run 2: the same backlog for A, and while it drains, tenant B's `--fairness-clients` clients,
  each one `POST /v1/inference` with `Prefer: wait=S` at a time and `--fairness-think-ms`
  between them, from A's first batch until A's last job is projected.

A's drain rate is what A's user sees: jobs projected terminal per second, from A's first
submission to the projection of its last outcome (end to end), and over the middle 80 % of its
jobs (steady: past the start-up, before the tail). Each outcome of A's lanes is timed projected
by its lane's checkpoint, sampled every 20 ms (bench.checkpoint.Watch), so nothing reads the log
while the runs are measured. B's latency is its clients': from the POST to the answer with the
job terminal, for the requests started while A's backlog was there, and apart: while A was
still submitting (the API is busy with A's batches) and while it only drained. Each of B's jobs
is also split into its parts (`Parts`): the API's accepting, the wait for a consumer, the work,
the projection (to the projector's announcement, which a thread of the bench hears:
bench.announcements) and the API's answer. The targets are bench.targets' (#15).

`--fairness-rounds R` repeats the pair (the order alternating), and the summary takes medians:
on a shared machine one pair can differ by more than the 10 % the target allows.
"""

from __future__ import annotations

import math
import statistics
import time
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import cpu, loadgen
from bench.announcements import listening
from bench.checkpoint import Watch, watching
from bench.clients import BATCH_PATH, Plan
from bench.options import Options
from bench.outcomes import (
    LaneKey,
    Tail,
    head,
    heads,
    read_lane,
    settled,
    stream_of,
    summarise,
)
from bench.report import Section, counts, quantiles_ms, rate
from bench.runs import Bench, cpu_row, memory_rows
from bench.stack import running_stack, tenant_key
from bench.tally import Tally
from domain.lanes import BULK
from eventlog.lanes import Lane
from eventlog.positions import START, position

TENANT_A, TENANT_B = "tenant-a", "tenant-b"
WARM_A_JOBS = 100  # one batch of A before measuring: its lanes exist and are served
WARM_B_JOBS = 20
B_NUMBERS = 10_000_000  # B's clients run until they are stopped, far below this
POLL_S = 0.25
STALL_S = 180.0  # no projection of A's lanes for this long: report what drained and stop
SEQ_BITS = 20  # an entry id (ms, seq) as one integer: ms << SEQ_BITS | seq


# The pure parts: positions, projection times, rates, percentiles.


def packed(entry: tuple[int, int]) -> int:
    """An entry id's (ms, seq) as one integer of the same order (seq below 2**20, as a stream
    never holds a million entries of one millisecond)."""
    return entry[0] << SEQ_BITS | min(entry[1], (1 << SEQ_BITS) - 1)


def projected_times(
    outcomes: Sequence[int],
    samples: Iterable[tuple[float, Mapping[LaneKey, tuple[int, int]]]],
    lane: LaneKey,
) -> list[float]:
    """When each of a lane's outcomes (packed positions, in order) was projected: the time of
    the first checkpoint sample at or past it. Outcomes never passed are left out."""
    times: list[float] = []
    at = 0
    for moment, positions in samples:
        reached = packed(positions.get(lane, (0, 0)))
        while at < len(outcomes) and outcomes[at] <= reached:
            times.append(moment)
            at += 1
        if at == len(outcomes):
            break
    return times


@dataclass(frozen=True)
class DrainRates:
    jobs: int  # jobs projected
    seconds: float  # from the first submission to the last projected
    end_to_end: float  # jobs / seconds
    steady: float  # over the middle 80 % of the jobs
    tenths: list[float]  # jobs/s of each tenth, from the end of the previous one


def drain_rates(began_at: float, projected: Sequence[float]) -> DrainRates:
    """A backlog's drain as its user sees it, from the time each job was projected."""
    times = sorted(projected)
    n = len(times)
    if not n:
        return DrainRates(0, float("nan"), float("nan"), float("nan"), [float("nan")] * 10)
    ends = [(k + 1) * n // 10 for k in range(10)]  # jobs done at the end of each tenth
    bounds = [began_at] + [times[end - 1] if end else began_at for end in ends]
    done = [0, *ends]
    tenths = [rate(done[k + 1] - done[k], bounds[k + 1] - bounds[k]) for k in range(10)]
    seconds = times[-1] - began_at
    steady = rate(done[9] - done[1], bounds[9] - bounds[1])
    return DrainRates(n, seconds, rate(n, seconds), steady, tenths)


def latency_ms(values: Sequence[float]) -> dict[str, float]:
    """Count, p50/p95/p99 and max of client latencies, in milliseconds."""
    found: dict[str, float] = {"count": len(values), **quantiles_ms(values)}
    found["max"] = round(max(values) * 1000, 3) if values else float("nan")
    return found


def latency_text(found: Mapping[str, float]) -> str:
    values = " / ".join(f"{found[q]:.1f}" for q in ("p50", "p95", "p99", "max"))
    return f"{values} ms ({found['count']:.0f} jobs)"


@dataclass(frozen=True)
class Parts:
    """Where one waiting job's time went, in seconds, from the client's latency and the
    occurred_at of its events (every process on one clock)."""

    client: float  # POST to the answer with the job terminal
    accepted: float  # the POST's start to JobRequested: the API taking the request
    queued: float  # JobRequested to JobStarted: waiting for a consumer
    worked: float  # JobStarted to the outcome: inference and the outcome's append
    projected: float  # the outcome to its announcement: the projector's batch and commit

    @property
    def answered(self) -> float:
        """The announcement to the client's answer: the API's wake-up and response."""
        return self.client - self.accepted - self.queued - self.worked - self.projected


PARTS = ("client", "accepted", "queued", "worked", "projected", "answered")


def breakdown(parts: Sequence[Parts]) -> dict[str, dict[str, float]]:
    """p50/p95/p99 of each part in milliseconds, and under "slowest" each part's mean over the
    slowest 5 % of the jobs by the client's latency: what the tail is made of."""
    found: dict[str, dict[str, float]] = {
        name: quantiles_ms([getattr(p, name) for p in parts]) for name in PARTS
    }
    tail = sorted(parts, key=lambda p: p.client)[-math.ceil(len(parts) / 20) :] if parts else []
    found["slowest"] = {
        name: statistics.fmean(getattr(p, name) for p in tail) * 1000 if tail else float("nan")
        for name in PARTS
    }
    found["slowest"]["count"] = len(tail)
    return found


def breakdown_text(found: Mapping[str, Mapping[str, float]]) -> str:
    """ "accepted a / b / c, queued ...": each part's p50 / p95 / mean over the slowest 5 %."""
    return ", ".join(
        f"{name} {found[name]['p50']:.1f} / {found[name]['p95']:.1f} / {found['slowest'][name]:.1f}"
        for name in PARTS[1:]
    )


PARTS_LEGEND = (
    "accepted: POST to JobRequested (API); queued: to JobStarted (consumers); worked: to the "
    "outcome (consumers); projected: to the announcement (projector); answered: to the client "
    "(API)"
)


def job_parts(
    tail: Tail, jobs: Iterable[tuple[str, float, float]], announced: Mapping[str, float]
) -> list[Parts]:
    """The parts of each (job id, client latency, submission's start) whose events the tail
    has read and whose announcement was heard."""
    found = []
    for job, latency, began_at in jobs:
        trace = tail.jobs.get(job)
        if trace is None or not trace.outcome or job not in announced:
            continue
        if trace.requested_at is None or trace.started_at is None:
            continue
        found.append(
            Parts(
                client=latency,
                accepted=trace.requested_at - began_at,
                queued=trace.started_at - trace.requested_at,
                worked=trace.finished_at - trace.started_at,
                projected=announced[job] - trace.finished_at,
            )
        )
    return found


def ratio(value: float, reference: float) -> float:
    return value / reference if reference and reference == reference else float("nan")


def median(values: Iterable[float]) -> float:
    present = [v for v in values if isinstance(v, int | float) and v == v]
    return statistics.median(present) if present else float("nan")


# Reading the log after a run.


@dataclass
class LaneScan:
    """A tenant's lanes read after a run: its outcomes' positions (packed, in order) by lane."""

    outcomes: dict[LaneKey, array[int]] = field(default_factory=dict)
    requested: int = 0
    failed: int = 0
    retried: int = 0
    last_ms: int = 0

    @property
    def terminal(self) -> int:
        return sum(len(found) for found in self.outcomes.values())


def scan(bench: Bench, lanes: Iterable[LaneKey], after: Mapping[LaneKey, str]) -> LaneScan:
    """Read the lanes past `after` (a lane missing from it, from its start)."""
    found = LaneScan()
    for key in lanes:
        mine = found.outcomes.setdefault(key, array("q"))
        stream = stream_of(bench.service.names, key)
        for chunk in read_lane(bench.redis, stream, after.get(key, START)):
            for entry_id, fields in chunk:
                kind = fields.get("type")
                if kind in ("JobSucceeded", "JobFailed"):
                    mine.append(packed(position(entry_id)))
                    found.failed += kind == "JobFailed"
                elif kind == "JobRequested":
                    found.requested += 1
                elif kind == "JobRetrying":
                    found.retried += 1
        if mine:
            found.last_ms = max(found.last_ms, mine[-1] >> SEQ_BITS)
    return found


# The runs.


@dataclass
class Keys:
    a: str
    b: str


def tenant_lanes(bench: Bench, tenant: str, kind: str) -> list[LaneKey]:
    return [(p, Lane(kind, tenant).name) for p in range(bench.partitions)]


def b_plan(bench: Bench, key: str, jobs: int) -> Plan:
    o = bench.options
    return bench.plan(
        "wait",
        jobs,
        o.fairness_clients,
        wait="prefer",
        wait_s=o.fairness_wait_s,
        think_s=o.fairness_think_ms / 1000,
        api_key=key,
    )


def a_plan(bench: Bench, key: str, jobs: int) -> Plan:
    o = bench.options
    return bench.plan("batch", jobs, o.batch_clients, path=BATCH_PATH, batch_size=o.batch_size,
                      api_key=key, keep_ids=False)  # fmt: skip


def warm(bench: Bench, keys: Keys) -> None:
    """A's and B's paths once before measuring: their keys are read and cached, their lanes
    exist and every reader serves them (a new lane is found within LANES_REFRESH_MS)."""
    bench.measure(a_plan(bench, keys.a, WARM_A_JOBS))
    bench.measure(b_plan(bench, keys.b, WARM_B_JOBS))


def fairness(work: Path, options: Options) -> list[Section]:
    """Every run's section (printed as it ends), then the summary that the targets read."""
    runs: list[Section] = []
    for round_no in range(options.fairness_rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        for with_b in order:
            section = one_run(work, options, with_b, round_no + 1)
            section.print()
            runs.append(section)
    return [*runs, summary(options, [s.data for s in runs])]


def one_run(work: Path, options: Options, with_b: bool, round_no: int) -> Section:
    what = "A's backlog, B waiting beside it" if with_b else "A's backlog alone (reference)"
    print(f"\nfairness, round {round_no}: {what}: starting", flush=True)
    with running_stack(work, options.consumers, options.api_workers, env=options.env) as service:
        bench = Bench(service, options)
        try:
            database = service.env["DATABASE_URL"]
            keys = Keys(tenant_key(database, TENANT_A), tenant_key(database, TENANT_B))
            bench.warm_up()
            warm(bench, keys)
            idle = None if with_b else idle_b(bench, keys.b)
            section = drain(bench, keys, with_b, round_no)
            if idle is not None:
                section.row("B on the idle stack", idle["text"])
                section.row(
                    "B's time, idle",
                    f"ms p50 / p95 / slowest 5 %: {breakdown_text(idle['data']['parts'])}",
                )
                section.data["b_idle"] = idle["data"]
            memory_rows(section, bench.memory_mb())
        finally:
            bench.close()
    return section


def idle_b(bench: Bench, key: str) -> dict[str, Any]:
    """B's clients alone, on the stack with no backlog: the reference of B's latency."""
    start = heads(bench.redis, bench.service.names, bench.partitions)
    with listening(bench.service.env["REDIS_URL"], bench.service.names.terminal) as heard:
        measured = bench.measure(b_plan(bench, key, bench.options.fairness_idle_jobs))
    tally = measured.tally
    found = latency_ms(tally.terminal_s)
    log = quantiles_ms(measured.outcomes.latency_s)
    tail = Tail(bench.redis, bench.service.names, bench.partitions, start, tenants={TENANT_B})
    tail.read()
    announced = heard.times(set(tally.terminal_ids))
    parts = breakdown(job_parts(tail, tally.jobs_between(), announced))
    text = (
        f"p50/95/99/max {latency_text(found)}, {rate(len(tally.terminal_s), tally.wall_s):.0f} "
        f"jobs/s; log p50/95/99 {' / '.join(f'{v:.1f}' for v in log.values())} ms"
    )
    data = {**found, "log_ms": log, "jobs_s": rate(len(tally.terminal_s), tally.wall_s),
            "lost": measured.outcomes.lost, "waits_expired": tally.waits_expired,
            "parts": parts}  # fmt: skip
    return {"text": text, "data": data}


def drain(bench: Bench, keys: Keys, with_b: bool, round_no: int) -> Section:
    o, client, names = bench.options, bench.redis, bench.service.names
    a_lanes = tenant_lanes(bench, TENANT_A, BULK)
    start = heads(client, names, bench.partitions)
    plan = a_plan(bench, keys.a, o.fairness_jobs)
    b = b_plan(bench, keys.b, B_NUMBERS) if with_b else None
    with (
        watching(bench.checkpoint.database_url) as watch,
        listening(bench.service.env["REDIS_URL"], names.terminal) as heard,
    ):
        before = cpu.sample(bench.roles(), bench.servers)
        # Both loads ready first, then off together: B is there from A's first batch on.
        loads = [loadgen.prepare(plan, o.load_procs)]
        try:
            if b is not None:
                loads.append(loadgen.prepare(b))
            for load in loads:
                load.go()
            drained_at = until_drained(bench, loads[0], a_lanes, watch, o.fairness_jobs)
            for load in loads[1:]:
                load.stop()
            a_tally = loads[0].result()
            b_tally = loads[1].result() if b is not None else None
        except BaseException:
            for load in loads:
                load.end()
            raise
        busy = cpu.spent(before, cpu.sample(bench.roles(), bench.servers))
        samples = list(watch.samples)
    # The log is read once the measured window is over.
    found = scan(bench, a_lanes, start)
    projected = [t for key in a_lanes for t in projected_times(found.outcomes[key], samples, key)]
    rates = drain_rates(a_tally.began_at, projected)
    title = (
        f"fairness, round {round_no}, run {2 if with_b else 1}: tenant A's {o.fairness_jobs} "
        f"jobs in batches of {o.batch_size} ({o.batch_clients} clients)"
        + (
            f", tenant B's {o.fairness_clients} clients beside them (Prefer: wait="
            f"{o.fairness_wait_s}, {o.fairness_think_ms:g} ms think)"
            if with_b
            else ", alone"
        )
    )
    section = Section(title, "fairness-run")
    section.data.update(round=round_no, with_b=with_b, drained=drained_at is not None)
    a_rows(section, a_tally, found, rates, drained_at)
    terminal = found.terminal
    client_s = a_tally.cpu_s
    if b_tally is not None:
        end = drained_at if drained_at is not None else a_tally.began_at + rates.seconds
        announced = heard.times(set(b_tally.terminal_ids))
        b_outcomes = b_rows(bench, section, b_tally, a_tally, end, start, announced)
        terminal += b_outcomes
        client_s += b_tally.cpu_s
    cpu_row(section, busy, terminal, client_s)
    section.data["cpu_s"] = busy
    return section


def until_drained(
    bench: Bench, a_running: loadgen.Running, a_lanes: list[LaneKey], watch: Watch, jobs: int
) -> float | None:
    """time.time() when the projection held the last outcome of A's lanes, once A's load is
    over and the consumers have finished its lanes; None when the projection stalled."""
    client, names = bench.redis, bench.service.names
    deadline = time.monotonic() + 600 + jobs / 100
    seen: tuple[Any, ...] = ()
    moved = time.monotonic()
    while time.monotonic() < deadline:
        if a_running.done() and settled(client, names, bench.partitions, a_lanes):
            ends = {key: head(client, stream_of(names, key)) for key in a_lanes}
            return watch.first_past(ends, max(deadline - time.monotonic(), 1.0))
        now = watch.samples[-1][1] if watch.samples else {}
        progress = tuple(now.get(key) for key in a_lanes)
        if progress != seen:
            seen, moved = progress, time.monotonic()
        elif a_running.done() and time.monotonic() - moved > STALL_S:
            print(f"fairness: A's lanes not projected further for {STALL_S:.0f} s, stopping")
            return None
        time.sleep(POLL_S)
    return None


def a_rows(
    section: Section, tally: Tally, found: LaneScan, rates: DrainRates, drained_at: float | None
) -> None:
    accept = rate(tally.accepted_count, tally.wall_s)
    section.row(
        "A submissions",
        f"{tally.accepted_count} accepted in {tally.wall_s:.1f} s ({accept:.0f} jobs/s), "
        f"{tally.refused_count} refused ({counts(tally.refused)}), {tally.failures} failed",
    )
    lost = max(tally.accepted_count - found.terminal, 0)
    section.row(
        "A outcomes",
        f"{found.terminal - found.failed} succeeded, {found.failed} failed, {found.retried} "
        f"retries, {lost} lost (accepted, no outcome); {rates.jobs} seen projected"
        + ("" if drained_at is not None else " (the projection did not finish)"),
    )
    logged = rate(found.terminal, found.last_ms / 1000 - tally.began_at)
    section.row(
        "A drain, end to end",
        f"{rates.end_to_end:.0f} jobs/s projected ({rates.jobs} jobs, first submission to last "
        f"projected in {rates.seconds:.1f} s); outcomes in the log {logged:.0f} jobs/s",
    )
    section.row("A drain, steady", f"{rates.steady:.0f} jobs/s projected (middle 80 % of jobs)")
    section.row("A drain by tenths", "jobs/s: " + " ".join(f"{r:.0f}" for r in rates.tenths))
    section.data["a"] = {
        "accepted": tally.accepted_count,
        "refused": dict(tally.refused),
        "failures": tally.failures,
        "accept_rate": accept,
        "succeeded": found.terminal - found.failed,
        "failed": found.failed,
        "retrying_events": found.retried,
        "lost": lost,
        "projected": rates.jobs,
        "drain_s": rates.seconds,
        "end_to_end": rates.end_to_end,
        "steady": rates.steady,
        "tenths": rates.tenths,
        "log_rate": logged,
    }


def b_rows(
    bench: Bench,
    section: Section,
    b: Tally,
    a: Tally,
    drained_at: float,
    start: Mapping[LaneKey, str],
    announced: Mapping[str, float],
) -> int:
    """B's latency while A's backlog was there, whole and by phase; returns B's outcomes."""
    tail = Tail(bench.redis, bench.service.names, bench.partitions, dict(start),
                tenants={TENANT_B})  # fmt: skip
    tail.read()
    outcomes = summarise(tail, b.accepted)
    under = latency_ms(b.terminal_between(a.began_at, drained_at))
    submitting = latency_ms(b.terminal_between(a.began_at, a.ended_at))
    draining = latency_ms(b.terminal_between(a.ended_at, drained_at))
    everything = latency_ms(b.terminal_s)
    window = max(drained_at - a.began_at, 1e-9)
    section.row("B under A's backlog", f"p50/95/99/max {latency_text(under)}, "
                f"{under['count'] / window:.0f} jobs/s")  # fmt: skip
    section.row("B while A submits", f"p50/95/99/max {latency_text(submitting)}")
    section.row("B while A only drains", f"p50/95/99/max {latency_text(draining)}")
    log = quantiles_ms(outcomes.latency_s)
    section.row(
        "B in the log",
        f"p50/95/99 {' / '.join(f'{v:.1f}' for v in log.values())} ms (JobRequested to "
        f"outcome: the consumers' part), all of B's {outcomes.jobs} jobs",
    )
    parts = {
        phase: breakdown(job_parts(tail, b.jobs_between(first, last), announced))
        for phase, first, last in (
            ("under", a.began_at, drained_at),
            ("submitting", a.began_at, a.ended_at),
            ("draining", a.ended_at, drained_at),
        )
    }
    for phase, label in (("submitting", "while A submits"), ("draining", "while A drains")):
        section.row(
            f"B's time {label}", f"ms p50 / p95 / slowest 5 %: {breakdown_text(parts[phase])}"
        )
    section.row("", f"({PARTS_LEGEND})")
    section.row(
        "B outcomes",
        f"{outcomes.succeeded} succeeded, {outcomes.failed} failed, {outcomes.lost} lost; "
        f"{b.waits_expired} POSTs answered before terminal, {b.unfinished} given up, "
        f"{b.refused_count} refused ({counts(b.refused)}), {b.failures} failed",
    )
    section.data["b"] = {
        **under,
        "jobs_s": under["count"] / window,
        "submitting": submitting,
        "draining": draining,
        "all": everything,
        "log_ms": log,
        "parts": parts,
        "succeeded": outcomes.succeeded,
        "failed": outcomes.failed,
        "lost": outcomes.lost,
        "waits_expired": b.waits_expired,
        "unfinished": b.unfinished,
        "refused": dict(b.refused),
        "failures": b.failures,
    }
    return outcomes.succeeded + outcomes.failed


# The summary: the runs side by side, and what the targets read.


def summary(options: Options, runs: Sequence[Mapping[str, Any]]) -> Section:
    alone = [r for r in runs if not r.get("with_b")]
    beside = [r for r in runs if r.get("with_b")]

    def of(found: Sequence[Mapping[str, Any]], part: str, name: str) -> float:
        return median(r.get(part, {}).get(name, float("nan")) for r in found)

    rate_alone, rate_with = of(alone, "a", "end_to_end"), of(beside, "a", "end_to_end")
    steady_alone, steady_with = of(alone, "a", "steady"), of(beside, "a", "steady")
    b_idle = {q: of(alone, "b_idle", q) for q in ("count", "p50", "p95", "p99", "max")}
    b_under = {q: of(beside, "b", q) for q in ("count", "p50", "p95", "p99", "max")}
    cpu_alone = _cpu_total(alone)
    cpu_with = _cpu_total(beside)
    rounds = len(beside)
    section = Section(
        f"fairness (issue #15): tenant A's {options.fairness_jobs}-job backlog alone and with "
        f"tenant B waiting beside it ({rounds} round(s){', medians' if rounds > 1 else ''})",
        "fairness",
    )
    section.row("", "run 1: A alone            run 2: A with B")
    section.row(
        "A drain, end to end",
        f"{rate_alone:8.0f} jobs/s       {rate_with:8.0f} jobs/s   "
        f"= {ratio(rate_with, rate_alone):.2f} of alone",
    )
    section.row(
        "A drain, steady",
        f"{steady_alone:8.0f} jobs/s       {steady_with:8.0f} jobs/s   "
        f"= {ratio(steady_with, steady_alone):.2f} of alone",
    )
    section.row(
        "B p50/95/99/max",
        f"idle: {latency_text(b_idle)}; under A's backlog: {latency_text(b_under)}",
    )
    section.row("CPU per job", f"ms: {cpu_alone:.2f} (A alone), {cpu_with:.2f} (A and B)")
    if rounds > 1:
        section.row("A ratio by round", " ".join(f"{r:.2f}" for r in round_ratios(runs)))
    section.data.update(
        rounds=rounds,
        jobs=options.fairness_jobs,
        a_rate_alone=rate_alone,
        a_rate_with_b=rate_with,
        a_ratio=ratio(rate_with, rate_alone),
        a_steady_alone=steady_alone,
        a_steady_with_b=steady_with,
        a_steady_ratio=ratio(steady_with, steady_alone),
        b_idle_ms=b_idle,
        b_under_ms=b_under,
        b_p95_ms=b_under["p95"],
        cpu_ms_per_job_alone=cpu_alone,
        cpu_ms_per_job_with_b=cpu_with,
    )
    return section


def _cpu_total(runs: Sequence[Mapping[str, Any]]) -> float:
    return median(sum(r.get("cpu_ms_per_job", {}).values()) for r in runs) if runs else float("nan")


def round_ratios(runs: Sequence[Mapping[str, Any]]) -> list[float]:
    """A's end-to-end rate with B over its rate alone, round by round."""
    by_round: dict[Any, dict[bool, float]] = {}
    for r in runs:
        rates = by_round.setdefault(r.get("round"), {})
        rates[bool(r.get("with_b"))] = r.get("a", {}).get("end_to_end", float("nan"))
    return [
        ratio(rates[True], rates[False])
        for rates in by_round.values()
        if True in rates and False in rates
    ]
