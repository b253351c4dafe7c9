"""Accept rate only: clients submit as fast as answers come, ours against the bare reference.

The reference appends to a stream and does nothing else, so its rate is the most this stack
(uvicorn, FastAPI, redis-py, one Redis) can accept; the ratio keeps results comparable across
machines. Single submissions and batches are both compared.
"""

from __future__ import annotations

from bench.report import Section, ms, quantiles_ms
from bench.runs import Bench, accept_rate, batch_plan, log_rows, memory_rows, success_row
from bench.tally import Tally


def accept(bench: Bench) -> Section:
    o = bench.options
    single = bench.measure(bench.plan("submit", o.accept_jobs, o.clients), projection=False)
    batch_jobs = max(o.accept_jobs, o.batch_size * o.batch_clients * 4)
    batched = bench.measure(batch_plan(bench, batch_jobs, o.batch_clients), projection=False)
    section = Section(f"accept rate: {o.clients} clients, and {o.batch_clients} batch clients",
                      "accept")  # fmt: skip
    _compare(section, "single", single.tally, bench.reference("single", o.clients))
    _compare(section, "batch", batched.tally, bench.reference("batch", o.batch_clients))
    success_row(section, single.outcomes)
    log_rows(section, single.outcomes)
    section.row("lost jobs, batch", f"{batched.outcomes.lost}")
    section.data["lost_batch"] = batched.outcomes.lost
    memory_rows(section, bench.memory_mb())
    return section


def _compare(section: Section, kind: str, ours: Tally, reference: Tally | None) -> None:
    ours_rate, reference_rate = accept_rate(ours), accept_rate(reference)
    if reference is not None:
        section.row(
            f"{kind}, reference",
            f"{reference_rate:.0f} jobs/s, request p50/95/99 {ms(reference.submit_s)} ms, "
            f"client {_cpu_us(reference):.0f} us CPU per request",
        )
    ratio = f" = {ours_rate / reference_rate:.2f} of the reference" if reference else ""
    refused = f", {ours.refused_count} refused" if ours.refused_count else ""
    section.row(
        f"{kind}, InferFlow",
        f"{ours_rate:.0f} jobs/s{ratio}, request p50/95/99 {ms(ours.submit_s)} ms{refused}, "
        f"client {_cpu_us(ours):.0f} us CPU per request",
    )
    section.data[kind] = {
        "rate": ours_rate,
        "request_ms": quantiles_ms(ours.submit_s),
        "refused": dict(ours.refused),
        "reference_rate": reference_rate,
        "reference_request_ms": quantiles_ms(reference.submit_s) if reference else None,
        "client_cpu_us_per_request": _cpu_us(ours),
        "reference_client_cpu_us_per_request": _cpu_us(reference) if reference else None,
    }


def _cpu_us(tally: Tally) -> float:
    return tally.cpu_s / max(tally.requests, 1) * 1e6
