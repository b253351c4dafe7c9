"""Command line of `python -m bench`: which modes to run, their sizes, and the stack's shape."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

# Modes that share one stack, then the ones that start their own.
SHARED_MODES = ("sequential", "longpoll", "concurrent", "polling", "batch", "accept")
OWN_STACK_MODES = (
    "projector",
    "scaling",
    "partitions",
    "backlog",
    "fairness",
    "listing",
    "webhooks",
)
MODES = SHARED_MODES + OWN_STACK_MODES


@dataclass(frozen=True)
class Options:
    modes: tuple[str, ...]
    jobs: int
    sequential_jobs: int
    longpoll_jobs: int
    clients: int
    poll: bool
    prefer: bool
    poll_ms: float
    wait_s: int
    batch_jobs: int
    batch_size: int
    batch_clients: int
    accept_jobs: int
    reference_jobs: int
    scaling_consumers: tuple[int, ...]
    scaling_load: str
    partitions: tuple[int, ...]
    partitions_on: tuple[str, ...]
    backlog_jobs: int
    backlog_probes: int
    projector_events: int
    projector_chunk: int
    fairness_jobs: int
    fairness_clients: int
    fairness_think_ms: float
    fairness_wait_s: int
    fairness_idle_jobs: int
    fairness_rounds: int
    listing_jobs: int
    listing_requests: int
    listing_pages: int
    listing_limit: int
    webhook_jobs: int
    webhook_rate: float
    notifiers: int
    consumers: int
    api_workers: int
    env: dict[str, str]
    load_procs: int
    reference: bool
    celery: bool
    celery_concurrency: int
    celery_pool: str
    warmup: int
    json: Path | None
    profile: Path | None


def _modes(text: str) -> tuple[str, ...]:
    asked = tuple(m.strip() for m in text.split(",") if m.strip())
    if "all" in asked:
        return MODES
    unknown = [m for m in asked if m not in MODES]
    if unknown or not asked:
        raise argparse.ArgumentTypeError(f"modes are all or some of {', '.join(MODES)}")
    return tuple(m for m in MODES if m in asked)  # always in the same order


def _counts(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def _topologies(text: str) -> tuple[str, ...]:
    asked = tuple(part.strip() for part in text.split(","))
    if not asked or any(kind not in ("server", "cluster") for kind in asked):
        raise argparse.ArgumentTypeError("topologies are server, cluster or both")
    return asked


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The module's text as written, and every option's default."""


def parser(description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=description, formatter_class=_Help
    )
    add = p.add_argument
    add("--mode", type=_modes, default="all", help="all, or a comma list of the modes above")
    add("-n", "--jobs", type=int, default=5000, help="jobs of the concurrent run")
    add("--sequential-jobs", type=int, default=200, help="jobs of the sequential run")
    add("--longpoll-jobs", type=int, default=500, help="jobs of the long-poll run")
    add("-c", "--clients", type=int, default=32, help="clients of the concurrent and accept runs")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--poll", action="store_true", help="concurrent: poll plainly instead of GET ?wait="
    )
    how.add_argument(
        "--prefer",
        action="store_true",
        help="concurrent: POST with Prefer: wait=S, one request per job, instead of GET ?wait=",
    )
    add("--poll-interval-ms", "--poll-ms", dest="poll_ms", type=float, default=10.0,
        help="interval of plain polling (polling, sequential, concurrent --poll)")  # fmt: skip
    add("--wait-s", type=int, default=10, help="long-poll wait asked for (at most 60)")
    add("--batch-jobs", type=int, default=100_000, help="jobs of the batch run")
    add("--batch-size", type=int, default=1000, help="jobs per batch request (at most 1000)")
    add("--batch-clients", type=int, default=4, help="clients posting batches")
    add("--accept-jobs", type=int, default=20_000, help="submissions of the accept run")
    add("--reference-jobs", type=int, default=10_000, help="appends per reference run")
    add("--scaling-consumers", type=_counts, default="1,2,4", help="consumer counts to compare")
    add("--scaling-load", choices=("concurrent", "batch"), default="concurrent",
        help="the load each scaling run applies")  # fmt: skip
    add("--partitions", type=_counts, default="1,2,4,8", help="partition counts to compare")
    add(
        "--partitions-on",
        type=_topologies,
        default="server,cluster",
        help="partitions mode: one Redis server, a local 3-master Redis Cluster, or both",
    )
    add("--backlog-jobs", type=int, default=1_000_000, help="queued jobs of the backlog run")
    add("--backlog-probes", type=int, default=10, help="jobs long-polled during the drain")
    add("--projector-events", type=int, default=200_000, help="events of the projector run")
    add("--projector-chunk", type=int, default=1,
        help="projector run: jobs whose requests, then starts, then outcomes come together "
        "(1: each job's four events in a row; 1000: as batches of jobs are worked)")  # fmt: skip
    add("--fairness-jobs", type=int, default=100_000,
        help="fairness: tenant A's backlog, posted in batches of --batch-size by "
        "--batch-clients clients")  # fmt: skip
    add("--fairness-clients", type=int, default=4,
        help="fairness: tenant B's clients, each one POST with Prefer: wait at a time")  # fmt: skip
    add("--fairness-think-ms", type=float, default=50.0,
        help="fairness: a B client's pause after each answer (interactive)")  # fmt: skip
    add("--fairness-wait-s", type=int, default=30, help="fairness: B's Prefer: wait=S")
    add("--fairness-idle-jobs", type=int, default=400,
        help="fairness: B's jobs on the idle stack (the reference of its latency)")  # fmt: skip
    add("--fairness-rounds", type=int, default=1,
        help="fairness: pairs of runs (A alone, A with B), each on fresh stacks; the summary "
        "takes their medians")  # fmt: skip
    add("--listing-jobs", type=int, default=1_000_000,
        help="listing: jobs in its database (seeded once, kept on the server)")  # fmt: skip
    add("--listing-requests", type=int, default=300,
        help="listing: sequential GET /v1/jobs per filter, as many reference reads")  # fmt: skip
    add("--listing-pages", type=int, default=10,
        help="listing: pages per walk (following next_cursor from the first page)")  # fmt: skip
    add("--listing-limit", type=int, default=100, help="listing: jobs per page (limit)")
    add("--webhook-jobs", type=int, default=10_000,
        help="webhooks: jobs with a webhook, offered at --webhook-rate")  # fmt: skip
    add("--webhook-rate", type=float, default=1000.0, help="webhooks: jobs with a webhook a second")
    add("--notifiers", type=int, default=1, help="webhooks: notifier processes of the stack")
    add("--consumers", type=int, default=2, help="consumer processes of the stack")
    add("--api-workers", type=int, default=1, help="API_WORKERS of the API (and the reference)")
    add("--env", type=_pair, action="append", default=[], metavar="KEY=VALUE",
        help="environment for every role, e.g. READ_COUNT=64 (repeat)")  # fmt: skip
    add("--load-procs", type=int, default=1, help="load generator processes")
    add("--no-reference", dest="reference", action="store_false",
        help="skip the reference endpoint (no ratios)")  # fmt: skip
    add("--no-celery", dest="celery", action="store_false",
        help="polling, concurrent: skip the Celery reference (no side-by-side)")  # fmt: skip
    add("--celery-concurrency", type=int, default=2, help="the Celery reference's worker slots")
    add("--celery-pool", choices=("prefork", "threads"), default="prefork",
        help="the Celery reference's pool (prefork: Celery's default, the seed's)")  # fmt: skip
    add("--warmup", type=int, default=100, help="jobs run on each stack before measuring")
    add("--json", type=Path, help="also write every result to this file")
    add("--profile", type=Path, metavar="DIR",
        help="sample every role with py-spy while each run's load lasts, into DIR")  # fmt: skip
    return p


def parse(argv: list[str] | None = None, description: str | None = None) -> Options:
    args = parser(description).parse_args(argv)
    values = vars(args)
    values["modes"] = values.pop("mode")
    values["env"] = dict(values["env"])
    return Options(**values)
