"""A job's run: how far it has got, and the scripts that decide its one terminal event.

Three parties may end a job: the consumer that runs it (its outcome), its tenant (a cancel, for
it or for its batch) and its deadline (Cancel-After). Each decision is one script in the job's
partition slot that reads and writes the job's run key (`Names.run`): absent while the job is
queued, `started` once a consumer began it, then the type of its terminal event
(`JobCancelled <reason>` for a cancel). Whoever writes first ends the job; the others write
nothing. So a job has exactly one terminal event, and one whose cancel is in the log never
starts:

- START (`lua/start.lua`) begins a lane's jobs, unless a job's run has ended (it is only
  acknowledged), its batch was cancelled or its deadline has passed (it ends cancelled, without
  running);
- FINISH (`lua/finish.lua`, through eventlog.group) appends the outcome, unless the run has
  ended meanwhile, or the batch was cancelled or the deadline passed while it ran (then a
  JobCancelled instead);
- CANCEL (`lua/cancel.lua`) is the API's cancel of a job or of a batch's jobs, and a consumer's
  of a job whose deadline passed while it was queued or running (`expired`, `timed_out`);
- NOTE (`lua/note.lua`) appends a running job's JobRetrying only while its run has not ended.

A job with a deadline is also in its partition's deadlines (a sorted set scored by the deadline
in Unix ms, the member `<job id> <lane name>`), from the step that appends its request to the
one that ends it; consumers sweep the due ones (consumer.deadlines). Deadlines are decided on
the Redis server's clock, so every consumer agrees on them.

The run key lives `JOB_INDEX_TTL_S` from its last change, as long as the job index, which is
longer than any deadline: a job queued for longer than that would start again after a cancel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.events import JobCancelled, JobRequested, JobStarted, encode
from domain.ids import partition_of
from eventlog.entries import flat_args
from eventlog.lanes import Lane
from eventlog.names import Names

STARTED = "started"
# CANCEL's reason for a passed deadline: the script decides between expired and timed_out.
DEADLINE = "deadline"

# (KEYS, ARGV) of one script call
Call = tuple[list[str], list[str]]


class Verdict(StrEnum):
    """What a script did with a job."""

    STARTED = "started"  # START began it
    WRITTEN = "written"  # FINISH appended the outcome: it is the job's end
    SUPERSEDED = "superseded"  # FINISH: another consumer holds the entry now; nothing written
    ENDED = "ended"  # it had ended already (a cancel): nothing written, the entry acknowledged
    CANCELLED = "cancelled"  # it was cancelled now
    NOT_DUE = "not_due"  # CANCEL for a deadline that has not passed (or is gone)


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    # CANCELLED: the CancelReason; ENDED: the run as it stood ("JobSucceeded", "JobCancelled
    # requested", ...).
    detail: str = ""
    entry_id: str = ""  # of the event written

    @property
    def ended_as(self) -> str:
        """ENDED: the type of the job's terminal event."""
        return self.detail.partition(" ")[0]

    @property
    def cancel_reason(self) -> str | None:
        """The CancelReason of a job cancelled now, or of one found cancelled."""
        if self.verdict is Verdict.CANCELLED:
            return self.detail
        if self.verdict is Verdict.ENDED and self.ended_as == JobCancelled.__name__:
            return self.detail.partition(" ")[2] or None
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse(reply: Sequence[Any]) -> Decision:
    """A reply of START (per job), FINISH or CANCEL."""
    code = int(reply[0])
    if code == 1:  # START's {1}, FINISH's {1, entry id}
        if len(reply) == 1:
            return Decision(Verdict.STARTED)
        return Decision(Verdict.WRITTEN, entry_id=_text(reply[1]))
    if code == 2:
        return Decision(Verdict.CANCELLED, _text(reply[1]), _text(reply[2]))
    if code == 0:
        return Decision(Verdict.ENDED, _text(reply[1]))
    if code == -1:
        return Decision(Verdict.SUPERSEDED)
    return Decision(Verdict.NOT_DUE)


def deadline_ms(deadline: datetime | None) -> str:
    """A deadline as the scripts take it: Unix ms, rounded up (never early); "" for none."""
    return "" if deadline is None else str(math.ceil(deadline.timestamp() * 1000))


def deadline_member(job_id: str, lane: Lane) -> str:
    """A job's member in its partition's deadlines."""
    return f"{job_id} {lane.name}"


def parse_member(member: str) -> tuple[str, Lane]:
    """The job id and lane of a deadlines member; ValueError for anything else."""
    job_id, _, lane = member.partition(" ")
    return job_id, Lane.parse(lane)


@dataclass(frozen=True, slots=True)
class LaneRuns:
    """The keys of the runs of one lane's jobs, and the calls of the scripts on them."""

    names: Names
    partition: int
    lane: Lane
    group: str
    ttl_s: int

    @property
    def stream(self) -> str:
        return self.names.lane(self.partition, self.lane)

    @property
    def unfinished(self) -> str:
        return self.names.queued(self.partition, self.lane)

    @property
    def deadlines(self) -> str:
        return self.names.deadlines(self.partition)

    def run(self, job_id: str) -> str:
        return self.names.run(job_id)

    def batch_cancelled(self, job_id: str, batch_id: str) -> str:
        """The job's batch's cancelled key; its run key when it has no batch (the scripts'
        way of saying none, in the same slot)."""
        if not batch_id:
            return self.run(job_id)
        return self.names.batch_cancelled(self.partition, batch_id)

    def start(
        self, requests: Sequence[tuple[str, JobRequested]], consumer: str, at: datetime
    ) -> Call:
        """START for the (entry id, request) of one read, in order."""
        keys = [self.stream, self.unfinished, self.deadlines]
        values: list[str] = []
        for entry_id, request in requests:
            keys += [
                self.run(request.job_id),
                self.batch_cancelled(request.job_id, request.batch_id),
            ]
            values += [entry_id, request.job_id, deadline_ms(request.deadline)]
        started = flat_args(
            encode(JobStarted(job_id="", occurred_at=at, consumer=consumer, attempt=1))
        )
        cancelled = _cancelled(consumer, at)
        argv = [self.group, str(self.ttl_s), self.lane.name, str(len(started)), *started]
        return keys, [*argv, str(len(cancelled)), *cancelled, *values]

    def finish(
        self, job_id: str, request: JobRequested | None, consumer: str, at: datetime
    ) -> tuple[list[str], list[str], list[str]]:
        """FINISH's keys of the job's run (run key, deadlines, batch's cancelled key), its
        ARGV before the outcome (ttl, deadline, member) and the JobCancelled it may write
        instead (none when neither its batch nor its deadline can cancel it)."""
        batch_id = request.batch_id if request else ""
        deadline = deadline_ms(request.deadline if request else None)
        keys = [self.run(job_id), self.deadlines, self.batch_cancelled(job_id, batch_id)]
        member = deadline_member(job_id, self.lane) if deadline else ""
        cancelled = _cancelled(consumer, at, job_id) if batch_id or deadline else []
        return keys, [str(self.ttl_s), deadline, member], cancelled

    def note(self, job_id: str, fields: dict[str, str]) -> Call:
        """NOTE: append a running job's event unless its run has ended."""
        return [self.stream, self.run(job_id)], flat_args(fields)


def _cancelled(by: str, at: datetime, job_id: str = "") -> list[str]:
    """A JobCancelled's fields for the scripts to fill in (its job id, when "", and reason)."""
    return flat_args(encode(JobCancelled(job_id=job_id, occurred_at=at, reason="", by=by)))


@dataclass(frozen=True, slots=True)
class Cancel:
    """One job to cancel: `reason` a CancelReason, or DEADLINE (the script decides which)."""

    job_id: str
    lane: Lane
    reason: str
    by: str
    at: datetime


def cancel_call(names: Names, group: str, ttl_s: int, cancel: Cancel) -> Call:
    """CANCEL for one job."""
    partition = partition_of(cancel.job_id)
    keys = [
        names.run(cancel.job_id),
        names.lane(partition, cancel.lane),
        names.queued(partition, cancel.lane),
        names.deadlines(partition),
        names.job(cancel.job_id),
    ]
    reason = cancel.reason if cancel.reason != DEADLINE else ""
    event = JobCancelled(job_id=cancel.job_id, occurred_at=cancel.at, reason=reason, by=cancel.by)
    member = deadline_member(cancel.job_id, cancel.lane)
    argv = [group, str(ttl_s), member, cancel.reason, *flat_args(encode(event))]
    return keys, argv
