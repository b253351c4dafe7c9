"""`python -m bench`: load a whole InferFlow on this machine and report, with a reference limit.

Modes (--mode all, or a comma list of them):
  sequential  1 client: submit, poll until terminal, submit the next (the seed's bench.sh)
  longpoll    1 client: POST with Prefer: wait=S (GET ?wait=S after a 202); latency
  concurrent  C clients submitting and waiting (GET ?wait=S; --poll: plain polling)
  polling     C clients (the seed's): submit, then GET /v1/jobs/{id} every --poll-interval-ms
              (10) until terminal; with concurrent, also run against a Celery reference of the
              seed's design (FastAPI + Celery on the same Redis and PostgreSQL, bench/celeryref)
              and reported side by side as "N x the Celery design"
  batch       clients posting batches of B jobs; accept rate and end to end from the log
  accept      submit only, single and batch, against the bare reference endpoint
  projector   fill the stream with the projector stopped, then its live rate
  scaling     concurrent (or batch) load against 1, 2, 4 consumers, a fresh stack each
  partitions  batch load on 1, 2, 4, 8 partitions (a projector each), one server and a cluster
  backlog     N queued jobs (default 1,000,000): drain rate by tenths, latency before/after
  fairness    tenant A's bulk backlog alone, then with tenant B's waiting clients beside it:
              A's drain rate both times, B's latency idle and under the backlog (issue #15)
  listing     GET /v1/jobs, pages of 100 from 1,000,000 jobs, for each filter, with GET
              /v1/jobs/{id} beside it and the API's CPU per request (issue #16); the jobs are
              seeded once into a database kept on the server, so a rerun skips that
  webhooks    jobs with a webhook at --webhook-rate (1,000/s) to a local receiver: deliveries
              per second and the delay from terminal event to delivery (issue #18)

Servers come from REDIS_URL / DATABASE_URL, else embedded ones, started once. Every stack gets
a fresh database and key prefix. The load comes from `bench.loadgen` processes (uvloop, a
hand-written HTTP/1.1 client), so the client costs little of the machine it shares.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from bench import listing, machine, options, targets
from bench.accept import accept
from bench.backlog import backlog
from bench.batch import batch
from bench.catchup import projector
from bench.celeryref.compare import COMPARED, celery_polling, side_by_side
from bench.endtoend import concurrent, longpoll, polling, sequential
from bench.fairness import fairness
from bench.partitions import partitions
from bench.report import Section, write_json
from bench.runs import Bench
from bench.scaling import scaling
from bench.stack import reference_server, running_stack
from bench.webhooks import webhooks
from devstack.servers import postgres_server, redis_server

SHARED: dict[str, Callable[[Bench], Section]] = {
    "sequential": sequential,
    "longpoll": longpoll,
    "concurrent": concurrent,
    "polling": polling,
    "batch": batch,
    "accept": accept,
}
OWN_STACK: dict[str, Callable[[Path, options.Options], Section | list[Section]]] = {
    "projector": projector,
    "scaling": scaling,
    "partitions": partitions,
    "backlog": backlog,
    "fairness": fairness,
    "listing": listing.listing,
    "webhooks": webhooks,
}


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """Redis and PostgreSQL once for the whole bench; every stack below reuses them."""
    with redis_server() as redis_url, postgres_server() as postgres_url:
        os.environ.update(REDIS_URL=redis_url, DATABASE_URL=postgres_url)
        yield redis_url, postgres_url


def header(described: dict[str, Any], o: options.Options) -> None:
    print("# InferFlow bench")
    print(f"command   {described['command']}")
    load = " ".join(f"{x:.2f}" for x in described["load_average"])
    print(f"machine   {described['cores']} cores, {described['cpu']}, "
          f"{described['memory_gb']} GB RAM, load average {load}")  # fmt: skip
    print(f"software  Python {described['python']}, {described['redis']}, "
          f"{described['postgresql']}")  # fmt: skip
    env = " ".join(f"{k}={v}" for k, v in o.env.items()) or "defaults"
    print(f"stack     {o.consumers} consumer(s), {o.api_workers} API worker(s), env: {env}; "
          f"load: {o.load_procs} process(es)", flush=True)  # fmt: skip


def guarded(mode: str, run: Callable[[], Section | list[Section]]) -> list[Section]:
    """A mode that fails is reported and the others still run (runs can take many minutes)."""
    try:
        result = run()
    except Exception as exc:
        traceback.print_exc()
        failed = Section(f"{mode}: failed", mode, data={"error": repr(exc)})
        failed.row("error", repr(exc))
        result = failed
    sections = result if isinstance(result, list) else [result]
    for section in sections:
        if not section.printed:  # long modes print their parts as they end
            section.print()
    return sections


def shared_modes(work: Path, o: options.Options, redis_url: str) -> list[Section]:
    modes = [m for m in o.modes if m in SHARED]
    if not modes:
        return []
    sections: list[Section] = []
    with ExitStack() as stack:
        reference = reference_server(redis_url, o.api_workers) if o.reference else nullcontext()
        reference_url = stack.enter_context(reference)
        service = stack.enter_context(running_stack(work, o.consumers, o.api_workers, env=o.env))
        bench = Bench(service, o, reference_url)
        stack.callback(bench.close)
        bench.warm_up()
        for mode in modes:
            sections += guarded(mode, partial(SHARED[mode], bench))
    return sections


def main(argv: list[str] | None = None) -> None:
    o = options.parse(argv, __doc__)
    with (
        servers() as (redis_url, postgres_url),
        tempfile.TemporaryDirectory(prefix="inferflow-bench-") as tmp,
    ):
        described = machine.describe(redis_url, postgres_url)
        header(described, o)
        work = Path(tmp)
        sections = shared_modes(work, o, redis_url)
        if o.celery and any(m in o.modes for m in COMPARED):
            # After our stack has stopped: the two designs never share the machine's cores.
            run = partial(celery_polling, work, o, redis_url, postgres_url)
            sections += guarded("celery", run)
            if (compared := side_by_side(sections)) is not None:
                compared.print()
                sections.append(compared)
        for mode in (m for m in o.modes if m in OWN_STACK):
            sections += guarded(mode, partial(OWN_STACK[mode], work, o))
        checked = targets.check(sections)
        listing.check(sections, checked)
        checked.print()
        if o.json:
            write_json(o.json, {**described, "options": asdict(o)}, [*sections, checked])
            print(f"\nresults written to {o.json}")


if __name__ == "__main__":
    main()
