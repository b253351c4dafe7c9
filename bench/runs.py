"""A stack under measurement: load it, wait for what it accepted, and describe what happened.

`Bench` holds the running stack, the reference endpoint and what every mode needs: a plan for
the load processes, the log's view of the accepted jobs, the projection's catch-up, memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench import cpu, loadgen, memory, profiles
from bench.checkpoint import Checkpoint, watching
from bench.clients import BATCH_PATH, Kind, Plan
from bench.options import Options
from bench.outcomes import Outcomes, Tail, heads, summarise, wait_for_outcomes
from bench.report import Section, counts, ms, quantiles_ms, rate
from bench.stack import Stack
from bench.tally import Tally
from eventlog.connection import Client, connect, is_cluster

REFERENCE_SINGLE = "/append"
REFERENCE_BATCH = "/append_batch"


@dataclass
class Measured:
    """A load run and the log's and projection's view of the jobs it got accepted."""

    tally: Tally
    outcomes: Outcomes
    projected_at: float | None  # time.time() when the projection held every outcome
    cpu_s: dict[str, float] = field(default_factory=dict)  # by role, load to projection
    profiles: list[profiles.Profile] = field(default_factory=list)  # with --profile

    @property
    def terminal(self) -> int:
        return self.outcomes.succeeded + self.outcomes.failed

    def log_rate(self) -> float:
        """Jobs/s from the first submission to the last outcome appended to the log."""
        return rate(self.terminal, self.outcomes.last_ms / 1000 - self.tally.began_at)

    def projection_rate(self) -> float:
        if self.projected_at is None:
            return float("nan")
        return rate(self.terminal, self.projected_at - self.tally.began_at)


@dataclass
class Bench:
    service: Stack
    options: Options
    reference_url: str | None = None
    redis: Client = field(init=False)
    partitions: int = field(init=False)
    checkpoint: Checkpoint = field(init=False)
    servers: cpu.Servers = field(init=False)  # the server processes whose CPU is the run's
    _next: int = 0  # job numbers go on across runs, so no two jobs share a text
    _runs: int = 0
    _references: dict[tuple[str, int], Tally] = field(default_factory=dict)

    def __post_init__(self) -> None:
        env = self.service.env
        self.redis = connect(env["REDIS_URL"], is_cluster(env["REDIS_URL"]))
        self.checkpoint = Checkpoint(env["DATABASE_URL"])
        self.partitions = int(env.get("PARTITIONS", "1"))
        self.servers = cpu.Servers.of(
            env["REDIS_URL"], is_cluster(env["REDIS_URL"]), env["DATABASE_URL"]
        )

    def close(self) -> None:
        self.redis.close()
        self.checkpoint.close()

    def plan(self, kind: Kind, jobs: int, clients: int, **extra: Any) -> Plan:
        """A plan against the stack, sent with its admin key unless `api_key` is given."""
        numbers = range(self._next, self._next + jobs)
        self._next += jobs
        extra.setdefault("api_key", self.service.api_key)
        return Plan(url=self.service.url, kind=kind, numbers=numbers, clients=clients, **extra)

    def measure(self, plan: Plan, projection: bool = True) -> Measured:
        names = self.service.names
        after = heads(self.redis, names, self.partitions)
        tail = Tail(self.redis, names, self.partitions, after)
        self._runs += 1
        run = f"{self._runs:02d}-{plan.kind}-{plan.clients}c"
        with (
            watching(self.checkpoint.database_url) as watch,
            profiles.profiling(self.roles(), self.options.profile, run) as profiled,
        ):
            before = cpu.sample(self.roles(), self.servers)
            tally = loadgen.run(plan, self.options.load_procs)
            wait_for_outcomes(tail, tally.accepted)
            outcomes = summarise(tail, tally.accepted)
            projected = None
            if projection and outcomes.last_entries:
                # A slow projector may need minutes for a big batch: bounded, not cut short.
                limit_s = 120 + len(tally.accepted) / 100
                projected = watch.first_past(outcomes.last_entries, limit_s)
            busy = cpu.spent(before, cpu.sample(self.roles(), self.servers))
        return Measured(tally, outcomes, projected, busy, profiled)

    def roles(self) -> list[tuple[str, int]]:
        """The live roles' processes, the consumers (and projectors) each under one name."""
        return [
            (_role(name), proc.pid)
            for name, proc in self.service.procs.items()
            if proc.poll() is None
        ]

    def warm_up(self) -> None:
        """Jobs through every path first: connections, model loading, the first queries."""
        if self.options.warmup:
            wait_s = self.options.wait_s
            self.measure(self.plan("wait", self.options.warmup, 4, wait="prefer", wait_s=wait_s))

    def reference(self, kind: str, clients: int) -> Tally | None:
        """The bare append endpoint under the same load shape (measured once per shape)."""
        if self.reference_url is None:
            return None
        key = (kind, clients)
        if key not in self._references:
            jobs, size = self.options.reference_jobs, self.options.batch_size
            if kind == "batch":
                plan = Plan(self.reference_url, "batch", range(max(jobs, size * clients * 4)),
                            clients, REFERENCE_BATCH, batch_size=size, keep_ids=False)  # fmt: skip
            else:
                plan = Plan(self.reference_url, "submit", range(jobs), clients, REFERENCE_SINGLE,
                            keep_ids=False)  # fmt: skip
            self._references[key] = loadgen.run(plan, self.options.load_procs)
        return self._references[key]

    def memory_mb(self) -> dict[str, dict[int, float]]:
        """RSS of each live role, with every process under it (the API's workers)."""
        return {
            name: memory.tree_rss_mb(proc.pid)
            for name, proc in self.service.procs.items()
            if proc.poll() is None
        }


def _role(name: str) -> str:
    """Processes of one role under one name: consumer-0, consumer-1 as consumers."""
    if name.startswith("consumer"):
        return "consumers"
    return "projectors" if name.startswith("projector-") else name


def accept_rate(tally: Tally | None) -> float:
    return rate(tally.accepted_count, tally.wall_s) if tally else float("nan")


def of_reference(value: float, reference: float) -> str:
    if math.isnan(reference) or math.isnan(value) or reference == 0:
        return ""
    return f" ({value / reference:.2f} of the reference's {reference:.0f}/s)"


def submission_rows(section: Section, tally: Tally) -> None:
    section.row(
        "submissions",
        f"{tally.accepted_count} accepted ({tally.replayed} replayed, {tally.rejected} items "
        f"rejected), {tally.refused_count} refused ({counts(tally.refused)}), {tally.timeouts} "
        f"timed out, {sum(tally.errors.values())} failed ({counts(tally.errors)})",
    )
    section.data["submissions"] = {
        "accepted": tally.accepted_count,
        "replayed": tally.replayed,
        "rejected_items": tally.rejected,
        "refused": dict(tally.refused),
        "timeouts": tally.timeouts,
        "errors": dict(tally.errors),
        "unfinished": tally.unfinished,
    }


def success_row(section: Section, outcomes: Outcomes) -> None:
    section.row(
        "success rate",
        f"{outcomes.success_rate:.2%} ({outcomes.succeeded} succeeded, {outcomes.failed} "
        f"failed, of {outcomes.jobs} accepted)",
    )
    section.data.update(
        success_rate=outcomes.success_rate, succeeded=outcomes.succeeded, failed=outcomes.failed
    )


def log_rows(section: Section, outcomes: Outcomes) -> None:
    section.row("log p50/95/99", f"{ms(outcomes.latency_s)} ms (JobRequested to outcome)")
    section.row("retry rate", f"{outcomes.retry_rate:.2%}")
    section.row("lost jobs", f"{outcomes.lost} (accepted, no outcome in the log)")
    section.data.update(
        log_ms=quantiles_ms(outcomes.latency_s), retry_rate=outcomes.retry_rate, lost=outcomes.lost
    )


def client_rows(section: Section, tally: Tally, processes: int) -> None:
    per_request_us = tally.cpu_s / max(tally.requests, 1) * 1e6
    section.row(
        "load client",
        f"{tally.requests} requests in {tally.wall_s:.1f} s, {per_request_us:.0f} us CPU per "
        f"request, {tally.cpu_s / tally.wall_s:.0%} of a core, {processes} process(es)",
    )
    section.data["client"] = {
        "requests": tally.requests,
        "wall_s": tally.wall_s,
        "cpu_us_per_request": per_request_us,
        "processes": processes,
    }


def cpu_rows(section: Section, measured: Measured) -> None:
    """CPU per terminal job by role: where the run's time went (the load client apart)."""
    cpu_row(section, measured.cpu_s, measured.terminal, measured.tally.cpu_s)
    profile_rows(section, measured.profiles)


def profile_rows(section: Section, profiled: list[profiles.Profile], n: int = 6) -> None:
    """Each role's busiest functions (--profile): by samples running them, and on the stack."""
    for profile in profiled:
        if not profile.samples:
            continue
        busiest = ", ".join(f"{name} {share:.0%}" for name, share in profile.top(profile.own, n))
        section.row(f"profile: {profile.role}, self", busiest)
        within = ", ".join(f"{name} {share:.0%}" for name, share in profile.top(profile.total, n))
        section.row(f"profile: {profile.role}, total", within)
    if profiled:
        section.data["profile"] = {
            p.role: {"samples": p.samples, "self": dict(p.top(p.own, 25))} for p in profiled
        }


def cpu_row(section: Section, cpu_s: dict[str, float], terminal: int, client_s: float) -> None:
    """CPU per terminal job by role, from the seconds each role spent (cpu.spent) and the load
    client's own."""
    jobs = max(terminal, 1)
    roles = dict(sorted(cpu_s.items(), key=lambda kv: -kv[1]))
    client_ms = client_s / jobs * 1000
    parts = ", ".join(f"{role} {seconds / jobs * 1000:.2f}" for role, seconds in roles.items())
    total_ms = sum(roles.values()) / jobs * 1000 + client_ms
    section.row(
        "CPU per job", f"ms: {parts}, load client {client_ms:.2f}; {total_ms:.2f} ms in all"
    )
    section.data["cpu_ms_per_job"] = {
        **{role: seconds / jobs * 1000 for role, seconds in roles.items()},
        "load_client": client_ms,
    }
    service_row(section, sum(roles.values()) / jobs * 1000)


def service_row(section: Section, service_ms: float) -> None:
    """The one CPU figure that compares across runs and machines: what a job costs every
    process that serves it (the roles, with their children, and the Redis and PostgreSQL
    servers), the load generator left out."""
    section.row("CPU per job, all processes but the load generator", f"{service_ms:.2f} ms")
    section.data["cpu_ms_per_job_service"] = service_ms


def memory_rows(section: Section, rss: dict[str, dict[int, float]]) -> None:
    parts = []
    for name, processes in rss.items():
        total = sum(processes.values())
        each = ", ".join(f"{mb:.0f}" for mb in processes.values())
        parts.append(f"{name} {total:.0f}" + (f" ({each})" if len(processes) > 1 else ""))
    section.row("resident memory", "MB: " + "; ".join(parts))
    section.data["rss_mb"] = {
        name: {"total": sum(p.values()), "processes": list(p.values())} for name, p in rss.items()
    }


def batch_plan(bench: Bench, jobs: int, clients: int) -> Plan:
    return bench.plan("batch", jobs, clients, path=BATCH_PATH, batch_size=bench.options.batch_size)
