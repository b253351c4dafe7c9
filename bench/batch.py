"""Batch submission: clients post batches as fast as answers come; end to end from the log.

Jobs are not polled one by one: the event log says when each outcome was appended, and the
projector's checkpoint says when the projection (what clients read) held the last one.
"""

from __future__ import annotations

from bench.report import Section, ms, quantiles_ms
from bench.runs import (
    Bench,
    accept_rate,
    batch_plan,
    client_rows,
    cpu_rows,
    log_rows,
    memory_rows,
    of_reference,
    submission_rows,
    success_row,
)


def batch(bench: Bench, label: str = "batch") -> Section:
    o = bench.options
    plan = batch_plan(bench, o.batch_jobs, o.batch_clients)
    measured = bench.measure(plan)
    tally = measured.tally
    reference = accept_rate(bench.reference("batch", plan.clients))
    title = f"{label}: {plan.clients} clients, {o.batch_jobs} jobs in batches of {o.batch_size}"
    section = Section(title, "batch")
    section.data.update(clients=plan.clients, jobs=o.batch_jobs, batch_size=o.batch_size)
    submission_rows(section, tally)
    success_row(section, measured.outcomes)
    accepted, logged = accept_rate(tally), measured.log_rate()
    projected = measured.projection_rate()
    section.row("accept rate", f"{accepted:.0f} jobs/s accepted{of_reference(accepted, reference)}")
    section.row("end to end, log", f"{logged:.0f} jobs/s (first submission to last outcome)")
    section.row(
        "end to end, projection",
        f"{projected:.0f} jobs/s (first submission to last outcome projected)"
        + of_reference(projected, reference),
    )
    section.row("batch request p50/95/99", f"{ms(tally.submit_s)} ms")
    log_rows(section, measured.outcomes)
    client_rows(section, tally, o.load_procs)
    cpu_rows(section, measured)
    memory_rows(section, bench.memory_mb())
    section.data.update(
        accept_rate=accepted,
        throughput_jobs_s=projected,
        log_rate=logged,
        batch_request_ms=quantiles_ms(tally.submit_s),
        reference_rate=reference,
        ratio_to_reference=projected / reference if reference else None,
    )
    return section
