"""Modes where each client waits for its job before the next: sequential, longpoll, concurrent,
polling.

Throughput is the jobs clients saw terminal per second of the run; latency is from the start of
the submission to the answer that showed the job terminal, as a client experiences it.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.clients import Plan
from bench.options import Options
from bench.report import Section, ms, quantiles_ms, rate
from bench.runs import (
    Bench,
    accept_rate,
    client_rows,
    cpu_rows,
    log_rows,
    memory_rows,
    of_reference,
    submission_rows,
    success_row,
)


def sequential(bench: Bench) -> Section:
    """The seed's bench.sh: one client submits, polls until terminal, submits the next."""
    o = bench.options
    plan = bench.plan("wait", o.sequential_jobs, 1, wait="poll", poll_s=o.poll_ms / 1000)
    title = f"sequential: 1 client, {o.sequential_jobs} jobs, polling every {o.poll_ms:g} ms"
    return waited(bench, title, "sequential", plan)


def longpoll(bench: Bench) -> Section:
    """One client submits with `Prefer: wait`, falling back to GET ?wait= if answered 202."""
    o = bench.options
    plan = bench.plan("wait", o.longpoll_jobs, 1, wait="prefer", wait_s=o.wait_s)
    title = f"long-poll: 1 client, {o.longpoll_jobs} jobs, POST with Prefer: wait={o.wait_s}"
    return waited(bench, title, "longpoll", plan)


def polling(bench: Bench) -> Section:
    """C clients as the seed's clients are written: each submits, then polls GET /v1/jobs/{id}
    every --poll-interval-ms until the job is terminal, then submits the next."""
    o = bench.options
    plan = polling_plan(bench.plan, o)
    title = f"polling: {o.clients} clients, {o.jobs} jobs, submit then poll every {o.poll_ms:g} ms"
    return waited(bench, title, "polling", plan)


def polling_plan(plan: Callable[..., Plan], o: Options) -> Plan:
    """The polling clients' plan, from a stack's plan maker (ours or the Celery reference's)."""
    return plan("wait", o.jobs, o.clients, wait="poll", poll_s=o.poll_ms / 1000)


def concurrent(bench: Bench, label: str = "concurrent") -> Section:
    """C clients, each submitting and then waiting (GET ?wait=; --poll: polling; --prefer: the
    POST itself waits)."""
    o = bench.options
    if o.poll:
        plan = bench.plan("wait", o.jobs, o.clients, wait="poll", poll_s=o.poll_ms / 1000)
        how = f"submit then poll every {o.poll_ms:g} ms"
    elif o.prefer:
        plan = bench.plan("wait", o.jobs, o.clients, wait="prefer", wait_s=o.wait_s)
        how = f"POST with Prefer: wait={o.wait_s}"
    else:
        plan = bench.plan("wait", o.jobs, o.clients, wait="get", wait_s=o.wait_s)
        how = f"submit then GET ?wait={o.wait_s}"
    title = f"{label}: {o.clients} clients, {o.jobs} jobs, {how}"
    return waited(bench, title, "concurrent", plan)


def waited(bench: Bench, title: str, mode: str, plan: Plan) -> Section:
    measured = bench.measure(plan)
    tally, reference = measured.tally, bench.reference("single", plan.clients)
    section = Section(title, mode)
    section.data.update(clients=plan.clients, jobs=len(plan.numbers), wait=plan.wait)
    submission_rows(section, tally)
    success_row(section, measured.outcomes)
    throughput = rate(len(tally.terminal_s), tally.wall_s)
    section.row(
        "throughput",
        f"{throughput:.0f} jobs/s end to end{of_reference(throughput, accept_rate(reference))}",
    )
    compared = f" (reference append: {ms(reference.submit_s)})" if reference else ""
    section.row("submit p50/95/99", f"{ms(tally.submit_s)} ms{compared}")
    section.row("to terminal p50/95/99", f"{ms(tally.terminal_s)} ms (client: submit to terminal)")
    log_rows(section, measured.outcomes)
    client_rows(section, tally, bench.options.load_procs)
    cpu_rows(section, measured)
    memory_rows(section, bench.memory_mb())
    section.data.update(
        throughput_jobs_s=throughput,
        submit_ms=quantiles_ms(tally.submit_s),
        terminal_ms=quantiles_ms(tally.terminal_s),
        reference_rate=accept_rate(reference),
        reference_submit_ms=quantiles_ms(reference.submit_s) if reference else None,
        ratio_to_reference=throughput / accept_rate(reference) if reference else None,
    )
    return section
