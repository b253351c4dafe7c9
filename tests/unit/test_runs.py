"""The pure side of a job's run (eventlog.runs): script replies, deadlines, what the consumer
calls a job's end."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumer import reporting
from domain.events import JobFailed, JobRequested, JobSucceeded, decode
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from eventlog.runs import (
    Decision,
    LaneRuns,
    Verdict,
    deadline_member,
    deadline_ms,
    parse,
    parse_member,
)

JOB = "019ae4f2-1c3d-8000-8123-456789abcdef"


@pytest.mark.parametrize(
    ("reply", "decision"),
    [
        ([1], Decision(Verdict.STARTED)),
        ([1, "1-0"], Decision(Verdict.WRITTEN, entry_id="1-0")),
        ([-1], Decision(Verdict.SUPERSEDED)),
        ([0, "JobSucceeded"], Decision(Verdict.ENDED, "JobSucceeded")),
        ([2, b"expired", b"2-0"], Decision(Verdict.CANCELLED, "expired", "2-0")),
        ([3], Decision(Verdict.NOT_DUE)),
    ],
)
def test_every_reply_reads_as_its_decision(reply, decision):
    assert parse(reply) == decision


def test_a_decision_knows_a_cancel_when_it_made_one_or_found_one():
    assert Decision(Verdict.CANCELLED, "timed_out").cancel_reason == "timed_out"
    found = Decision(Verdict.ENDED, "JobCancelled batch_cancelled")
    assert found.cancel_reason == "batch_cancelled" and found.ended_as == "JobCancelled"
    assert Decision(Verdict.ENDED, "JobFailed").cancel_reason is None
    assert Decision(Verdict.WRITTEN).cancel_reason is None


def test_a_deadline_is_whole_ms_never_early():
    assert deadline_ms(None) == ""
    assert deadline_ms(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == "1767225600001"
    assert deadline_ms(datetime(2026, 1, 1, tzinfo=UTC)) == "1767225600000"


def test_a_deadline_member_names_its_job_and_lane():
    lane = Lane("bulk", "acme")
    assert parse_member(deadline_member(JOB, lane)) == (JOB, lane)
    assert parse_member(deadline_member(JOB, DEFAULT_LANE)) == (JOB, DEFAULT_LANE)
    with pytest.raises(ValueError):
        parse_member("junk")


def test_start_sends_the_events_once_and_each_job_in_three_values():
    runs = LaneRuns(Names("p"), 0, DEFAULT_LANE, "workers", 60)
    request = JobRequested(
        job_id=JOB, occurred_at=datetime.now(UTC), text="t", model_version="m", batch_id="b"
    )
    keys, argv = runs.start([("1-0", request)], "c1", datetime.now(UTC))
    assert keys == [
        "{p:p0}:events",
        "{p:p0}:queued:interactive:default",
        "{p:p0}:deadlines",
        f"{{p:p0}}:run:{JOB}",
        "{p:p0}:batch-cancelled:b",
    ]
    assert argv[-3:] == ["1-0", JOB, ""]
    started_len = int(argv[3])
    started = dict(zip(argv[4 : 4 + started_len : 2], argv[5 : 4 + started_len : 2], strict=True))
    assert decode({**started, "job_id": JOB}).consumer == "c1"
    # Without a batch, its run key stands in for the batch's: none, in the same slot.
    alone = JobRequested(job_id=JOB, occurred_at=datetime.now(UTC), text="t", model_version="m")
    keys, _ = runs.start([("1-0", alone)], "c1", datetime.now(UTC))
    assert keys[-1] == keys[-2]


def test_a_consumer_names_each_end():
    ok = JobSucceeded(
        job_id=JOB,
        occurred_at=datetime.now(UTC),
        consumer="c",
        attempt=1,
        label="ham",
        score=1.0,
        model_version="m",
        inference_ms=1.0,
    )
    failed = JobFailed(
        job_id=JOB,
        occurred_at=datetime.now(UTC),
        consumer="c",
        attempt=1,
        error_type="E",
        error="e",
        transient=False,
    )
    assert reporting.outcome_name(ok, Decision(Verdict.WRITTEN)) == "succeeded"
    assert reporting.outcome_name(failed, Decision(Verdict.WRITTEN)) == "failed"
    assert reporting.outcome_name(ok, Decision(Verdict.SUPERSEDED)) == "superseded"
    assert reporting.outcome_name(ok, Decision(Verdict.CANCELLED, "timed_out")) == "cancelled"
    found = Decision(Verdict.ENDED, "JobCancelled requested")
    assert reporting.outcome_name(ok, found) == "cancelled"
    assert reporting.unstarted_name(found) == "cancelled"
    assert reporting.unstarted_name(Decision(Verdict.ENDED, "JobSucceeded")) == "superseded"
