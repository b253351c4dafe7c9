"""The server's side of a run, read from the event log: outcomes, retries, lost jobs, timing.

Entry ids are Redis's wall clock in milliseconds, so they time when each event was appended
without trusting any client; `occurred_at` gives the finer JobRequested-to-outcome latency.
The log is read after the load, or while it settles, never in a loop that competes with it.

A partition's log is several streams, its lanes (eventlog.lanes: one per tenant and kind of
job), so everything here reads every lane of every partition, and looks for new lanes each
time it reads: a lane appears with its first job, possibly in the middle of a run. A lane's
stream is named by its `LaneKey`, (partition, lane name), which is also how the projector's
checkpoints name it (bench.checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventlog.connection import Client
from eventlog.entries import Entry, range_entries
from eventlog.lanes import Lane, known_lanes
from eventlog.names import Names
from eventlog.positions import START, entry_ms, position

TERMINAL_TYPES = frozenset({"JobSucceeded", "JobFailed"})
READ_CHUNK = 10_000

LaneKey = tuple[int, str]  # (partition, lane name): one lane's stream of one partition


def lane_streams(client: Client, names: Names, partitions: int) -> dict[LaneKey, str]:
    """Every lane of every partition (the default lane included, whether or not its stream
    exists yet), and its stream's key."""
    return {
        (p, lane.name): names.lane(p, lane)
        for p in range(partitions)
        for lane in known_lanes(client, names, p)
    }


def stream_of(names: Names, key: LaneKey) -> str:
    return names.lane(key[0], Lane.parse(key[1]))


def read_lane(client: Client, stream: str, after: str = START) -> Iterator[list[Entry]]:
    """A lane's entries after `after`, in chunks of at most READ_CHUNK, to its end."""
    while True:
        chunk = range_entries(client.xrange(stream, f"({after}", "+", count=READ_CHUNK))
        if chunk:
            yield chunk
            after = chunk[-1][0]
        if len(chunk) < READ_CHUNK:
            return


def _moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class JobTrace:
    requested_at: float | None = None  # occurred_at of JobRequested
    started_at: float | None = None  # occurred_at of the first JobStarted
    outcome: str = ""  # JobSucceeded / JobFailed, "" while there is none
    finished_at: float = 0.0  # occurred_at of the outcome
    finished_entry: str = ""  # entry id of the outcome
    finished_lane: LaneKey = (0, "")
    retried: bool = False


@dataclass
class Tail:
    """Reads every lane of every partition (or the lanes of `tenants` only) from a position
    onwards, remembering each job's request and outcome. A lane found later than `after` was
    made is read from its start."""

    client: Client
    names: Names
    partitions: int
    after: dict[LaneKey, str]  # lane -> the last entry read (heads(), when the run began)
    jobs: dict[str, JobTrace] = field(default_factory=dict)
    tenants: Collection[str] | None = None

    def read(self) -> int:
        """Read everything appended since the last call; returns how many entries that was."""
        for key in lane_streams(self.client, self.names, self.partitions):
            self.after.setdefault(key, START)  # a lane that appeared since: all of it is new
        return sum(self._read(key) for key in self.after if self._follows(key))

    def _follows(self, key: LaneKey) -> bool:
        return self.tenants is None or Lane.parse(key[1]).tenant in self.tenants

    def _read(self, key: LaneKey) -> int:
        count = 0
        for chunk in read_lane(self.client, stream_of(self.names, key), self.after[key]):
            for entry_id, fields in chunk:
                self._note(key, entry_id, fields)
            count += len(chunk)
        return count

    def _note(self, key: LaneKey, entry_id: str, fields: dict[str, str]) -> None:
        self.after[key] = entry_id
        kind = fields.get("type")
        trace = self.jobs.setdefault(fields.get("job_id", ""), JobTrace())
        if kind == "JobRequested":
            trace.requested_at = _moment(fields["occurred_at"])
        elif kind == "JobStarted" and trace.started_at is None:
            trace.started_at = _moment(fields["occurred_at"])
        elif kind == "JobRetrying":
            trace.retried = True
        elif kind in TERMINAL_TYPES and not trace.outcome:
            trace.outcome = kind
            trace.finished_at = _moment(fields["occurred_at"])
            trace.finished_entry = entry_id
            trace.finished_lane = key

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
    last_entries: dict[LaneKey, str]  # each lane's latest outcome entry (lanes with outcomes)

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.jobs if self.jobs else float("nan")

    @property
    def retry_rate(self) -> float:
        return self.retried / self.jobs if self.jobs else float("nan")

    @property
    def last_ms(self) -> int:
        return max((entry_ms(e) for e in self.last_entries.values()), default=0)


def summarise(tail: Tail, job_ids: Collection[str]) -> Outcomes:
    traces = [tail.jobs.get(j, JobTrace()) for j in job_ids]
    done = [t for t in traces if t.outcome]
    latency = [t.finished_at - t.requested_at for t in done if t.requested_at is not None]
    last: dict[LaneKey, str] = {}
    for t in done:
        now = last.get(t.finished_lane)
        if now is None or position(t.finished_entry) > position(now):
            last[t.finished_lane] = t.finished_entry
    return Outcomes(
        jobs=len(traces),
        succeeded=sum(t.outcome == "JobSucceeded" for t in done),
        failed=sum(t.outcome == "JobFailed" for t in done),
        retried=sum(t.retried for t in traces),
        lost=len(traces) - len(done),
        latency_s=latency,
        last_entries=last,
    )


def _group(client: Client, stream: str, group: str) -> dict[str, Any] | None:
    for found in client.xinfo_groups(stream):
        if found["name"] == group:
            return dict(found)
    return None


def group_progress(client: Client, names: Names, partitions: int = 1) -> tuple[int, int]:
    """Entries the workers group has read and how many of them are pending, over every lane of
    every partition."""
    read = pending = 0
    for stream in lane_streams(client, names, partitions).values():
        if not client.exists(stream):
            continue
        if (group := _group(client, stream, names.workers_group)) is not None:
            read += int(group.get("entries-read") or 0)  # absent before Redis 7
            pending += int(group["pending"])
    return read, pending


def lane_settled(client: Client, names: Names, stream: str) -> bool:
    """Every entry of a lane delivered to the workers group and acknowledged (a lane without a
    stream has nothing to do; one without the group yet has all of it)."""
    if not client.exists(stream):
        return True
    group = _group(client, stream, names.workers_group)
    if group is None:
        return False
    last = client.xinfo_stream(stream)["last-generated-id"]
    return not group["pending"] and group["last-delivered-id"] == last


def settled(
    client: Client, names: Names, partitions: int = 1, lanes: Collection[LaneKey] | None = None
) -> bool:
    """Every entry of every lane of every partition (or of `lanes` only) delivered to the
    workers group and acknowledged: no work left."""
    streams = lane_streams(client, names, partitions)
    return all(
        lane_settled(client, names, stream)
        for key, stream in streams.items()
        if lanes is None or key in lanes
    )


def wait_settled(client: Client, names: Names, patience_s: float, partitions: int = 1) -> None:
    """Wait, asking Redis only for counters, until the consumers have nothing left to do."""
    length, quiet_since = -1, time.monotonic()
    while not settled(client, names, partitions):
        streams = lane_streams(client, names, partitions).values()
        now = sum(client.xlen(stream) for stream in streams)
        if now != length:
            length, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since > patience_s:
            return
        time.sleep(0.1)


def wait_for_outcomes(tail: Tail, job_ids: Collection[str], patience_s: float = 60.0) -> None:
    """Read the log until every job has its outcome, or nothing new came for `patience_s`.

    The log is read once the consumers are idle: reading it while they work would take CPU
    from the stack being measured (entry ids time the outcomes, not the reading).
    """
    wait_settled(tail.client, tail.names, patience_s, tail.partitions)
    quiet_since = time.monotonic()
    while True:
        if tail.read():
            quiet_since = time.monotonic()
        if not tail.pending(job_ids) or time.monotonic() - quiet_since > patience_s:
            return
        time.sleep(0.2)


def head(client: Client, stream: str) -> str:
    """The id of a stream's newest entry ("0-0" for an empty or missing stream)."""
    newest = client.xrevrange(stream, "+", "-", count=1)
    return str(newest[0][0]) if newest else START


def heads(client: Client, names: Names, partitions: int) -> dict[LaneKey, str]:
    """Where every lane of every partition ends now."""
    streams = lane_streams(client, names, partitions)
    return {key: head(client, stream) for key, stream in streams.items()}
