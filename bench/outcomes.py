"""The server's side of a run, read from the event log: outcomes, retries, lost jobs, timing.

Entry ids are Redis's wall clock in milliseconds, so they time when each event was appended
without trusting any client; `occurred_at` gives the finer JobRequested-to-outcome latency.
The log is read after the load, or while it settles, never in a loop that competes with it.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import redis

from infra.eventlog import range_entries
from infra.names import Names

TERMINAL_TYPES = frozenset({"JobSucceeded", "JobFailed"})
READ_CHUNK = 10_000


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream id as numbers, which order as the stream does (text does not)."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_ms(entry_id: str) -> int:
    return entry_key(entry_id)[0]


def _moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class JobTrace:
    requested_at: float | None = None  # occurred_at of JobRequested
    outcome: str = ""  # JobSucceeded / JobFailed, "" while there is none
    finished_at: float = 0.0  # occurred_at of the outcome
    finished_entry: str = ""  # entry id of the outcome
    retried: bool = False


@dataclass
class Tail:
    """Reads the log from a position onwards, remembering each job's request and outcome."""

    client: redis.Redis
    names: Names
    after: str = "0-0"
    jobs: dict[str, JobTrace] = field(default_factory=dict)

    def read(self) -> int:
        """Read everything appended since the last call; returns how many entries that was."""
        count = 0
        while True:
            reply = self.client.xrange(self.names.events, f"({self.after}", "+", count=READ_CHUNK)
            chunk = range_entries(reply)
            for entry_id, fields in chunk:
                self._note(entry_id, fields)
            count += len(chunk)
            if len(chunk) < READ_CHUNK:
                return count
            self.after = chunk[-1][0]

    def _note(self, entry_id: str, fields: dict[str, str]) -> None:
        self.after = entry_id
        kind = fields.get("type")
        trace = self.jobs.setdefault(fields.get("job_id", ""), JobTrace())
        if kind == "JobRequested":
            trace.requested_at = _moment(fields["occurred_at"])
        elif kind == "JobRetrying":
            trace.retried = True
        elif kind in TERMINAL_TYPES and not trace.outcome:
            trace.outcome = kind
            trace.finished_at = _moment(fields["occurred_at"])
            trace.finished_entry = entry_id

    def pending(self, job_ids: Collection[str]) -> int:
        """How many of the jobs have no outcome yet."""
        return sum(1 for j in job_ids if not self.jobs.get(j, JobTrace()).outcome)


@dataclass(frozen=True)
class Outcomes:
    jobs: int
    succeeded: int
    failed: int
    retried: int
    lost: int  # accepted, and no outcome in the log when we stopped waiting
    latency_s: list[float]  # JobRequested.occurred_at -> outcome.occurred_at
    last_entry: str  # entry id of the latest outcome, "" when there is none

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.jobs if self.jobs else float("nan")

    @property
    def retry_rate(self) -> float:
        return self.retried / self.jobs if self.jobs else float("nan")

    @property
    def last_ms(self) -> int:
        return entry_ms(self.last_entry) if self.last_entry else 0


def summarise(tail: Tail, job_ids: Collection[str]) -> Outcomes:
    traces = [tail.jobs.get(j, JobTrace()) for j in job_ids]
    done = [t for t in traces if t.outcome]
    latency = [t.finished_at - t.requested_at for t in done if t.requested_at is not None]
    last = max((t.finished_entry for t in done), key=entry_key, default="")
    return Outcomes(
        jobs=len(traces),
        succeeded=sum(t.outcome == "JobSucceeded" for t in done),
        failed=sum(t.outcome == "JobFailed" for t in done),
        retried=sum(t.retried for t in traces),
        lost=len(traces) - len(done),
        latency_s=latency,
        last_entry=last,
    )


def group_progress(client: redis.Redis, names: Names) -> tuple[int, int, str]:
    """Entries the workers group has read, how many are pending, and its last delivered id."""
    for group in client.xinfo_groups(names.events):
        if group["name"] == names.workers_group:
            read = group.get("entries-read") or 0  # absent before Redis 7
            return int(read), int(group["pending"]), str(group["last-delivered-id"])
    return 0, 0, "0-0"


def settled(client: redis.Redis, names: Names) -> bool:
    """Every entry delivered to the workers group and acknowledged: no work left."""
    if not client.exists(names.events):
        return True  # nothing was ever submitted
    _, pending, delivered = group_progress(client, names)
    return pending == 0 and delivered == client.xinfo_stream(names.events)["last-generated-id"]


def wait_settled(client: redis.Redis, names: Names, patience_s: float) -> None:
    """Wait, asking Redis only for counters, until the consumers have nothing left to do."""
    length, quiet_since = -1, time.monotonic()
    while not settled(client, names):
        if (now := client.xlen(names.events)) != length:
            length, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since > patience_s:
            return
        time.sleep(0.1)


def wait_for_outcomes(tail: Tail, job_ids: Collection[str], patience_s: float = 60.0) -> None:
    """Read the log until every job has its outcome, or nothing new came for `patience_s`.

    The log is read once the consumers are idle: reading it while they work would take CPU
    from the stack being measured (entry ids time the outcomes, not the reading).
    """
    wait_settled(tail.client, tail.names, patience_s)
    quiet_since = time.monotonic()
    while True:
        if tail.read():
            quiet_since = time.monotonic()
        if not tail.pending(job_ids) or time.monotonic() - quiet_since > patience_s:
            return
        time.sleep(0.2)


def position(client: redis.Redis, names: Names) -> str:
    """The id of the newest entry ("0-0" for an empty or missing stream)."""
    newest = client.xrevrange(names.events, "+", "-", count=1)
    return str(newest[0][0]) if newest else "0-0"
