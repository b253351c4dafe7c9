"""The job state machine and the fold, without fixtures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.events import (
    JobCancelled,
    JobFailed,
    JobRequested,
    JobRetrying,
    JobStarted,
    JobSucceeded,
)
from domain.job import JobResult, JobStatus, evolve, fold

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
JOB = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def requested(t=0.0, job=JOB, tenant="default"):
    return JobRequested(
        job_id=job, occurred_at=at(t), text="hello", model_version="m1", tenant=tenant
    )


def started(t=1.0, attempt=1):
    return JobStarted(job_id=JOB, occurred_at=at(t), consumer="c1", attempt=attempt)


def retrying(t=2.0, attempt=1):
    return JobRetrying(
        job_id=JOB,
        occurred_at=at(t),
        consumer="c1",
        attempt=attempt,
        error_type="TransientInferenceError",
        error="flaky",
        delay_ms=100,
    )


def succeeded(t=3.0, label="ham", attempt=2):
    return JobSucceeded(
        job_id=JOB,
        occurred_at=at(t),
        consumer="c1",
        attempt=attempt,
        label=label,
        score=0.9,
        probabilities={label: 0.9, "other": 0.1},
        model_version="m1",
        inference_ms=1.0,
    )


def failed(t=3.0, error="nope"):
    return JobFailed(
        job_id=JOB,
        occurred_at=at(t),
        consumer="c1",
        attempt=1,
        error_type="InferenceError",
        error=error,
        transient=False,
    )


def test_request_creates_a_queued_job():
    state = evolve(None, requested())
    assert state.status is JobStatus.QUEUED
    assert state.created_at == state.updated_at == T0
    assert state.model_version == "m1"
    assert state.result is None and state.retry_count == 0


def test_happy_path_with_a_retry():
    state = fold([requested(), started(), retrying(), succeeded()])[JOB]
    assert state.status is JobStatus.SUCCEEDED
    assert state.retry_count == 1
    assert state.attempts == 2
    assert state.started_at == at(1) and state.finished_at == at(3) and state.updated_at == at(3)
    assert state.result == JobResult("ham", 0.9, {"ham": 0.9, "other": 0.1}, "m1")
    assert state.error is None and state.error_type is None


def test_failure_keeps_the_reason():
    state = fold([requested(), started(), failed(error="bad input")])[JOB]
    assert state.status is JobStatus.FAILED
    assert state.error == "bad input" and state.error_type == "InferenceError"
    assert state.result is None


@pytest.mark.parametrize("second", [succeeded(t=9, label="spam"), failed(t=9)])
def test_terminal_state_absorbs_a_second_outcome(second):
    first = fold([requested(), started(), succeeded()])[JOB]
    assert evolve(first, second) == first


def test_terminal_state_absorbs_late_progress():
    done = fold([requested(), started(), failed()])[JOB]
    assert evolve(done, started(t=10, attempt=1)) == done
    assert evolve(done, retrying(t=10)) == done


def test_duplicate_request_changes_nothing():
    state = evolve(None, requested())
    assert evolve(state, requested()) == state


def test_duplicate_start_keeps_first_start_time():
    state = fold([requested(), started(t=1), started(t=5)])[JOB]
    assert state.status is JobStatus.STARTED
    assert state.started_at == at(1)


def test_out_of_order_events_fold_without_error():
    # The outcome seen before the request (a log read from the middle): status never regresses.
    state = fold([succeeded(t=3), started(t=1), requested(t=0)])[JOB]
    assert state.status is JobStatus.SUCCEEDED
    assert state.created_at == T0
    assert state.model_version == "m1"


def test_start_without_request_is_a_started_job():
    state = evolve(None, started())
    assert state.status is JobStatus.STARTED
    assert state.model_version is None


def test_fold_keeps_jobs_apart_and_does_not_mutate_its_input():
    other = "0193a1b2-c3d4-7e5f-8a9b-000000000000"
    before = fold([requested()])
    after = fold([requested(job=other)], before)
    assert set(before) == {JOB}
    assert set(after) == {JOB, other}


def test_event_for_another_job_is_a_bug():
    with pytest.raises(ValueError, match="applied to job"):
        evolve(evolve(None, requested()), requested(job="0193a1b2-c3d4-7e5f-8a9b-000000000000"))


def test_fold_is_deterministic():
    events = [requested(), started(), retrying(), retrying(t=2.5, attempt=2), succeeded()]
    assert fold(events) == fold(list(events))
    assert fold(events)[JOB].retry_count == 2


def test_a_job_is_its_requests_tenant_whatever_came_first():
    assert fold([requested(tenant="acme"), started(), succeeded()])[JOB].tenant == "acme"
    # Read from the middle of the log: the outcome before the request.
    assert fold([succeeded(), started(), requested(tenant="acme")])[JOB].tenant == "acme"


def cancelled(t=2.0, reason="requested"):
    return JobCancelled(job_id=JOB, occurred_at=at(t), reason=reason, by="api")


def test_a_queued_job_can_be_cancelled_and_keeps_the_reason():
    state = fold([requested(), cancelled(reason="expired")])[JOB]
    assert state.status is JobStatus.CANCELLED and state.status.is_terminal
    assert state.cancel_reason == "expired"
    assert state.finished_at == at(2) and state.started_at is None and state.result is None


def test_a_cancel_absorbs_the_outcome_that_lost_the_race_and_vice_versa():
    first_cancel = fold([requested(), started(), cancelled(t=2), succeeded(t=3)])[JOB]
    assert first_cancel.status is JobStatus.CANCELLED and first_cancel.result is None
    first_success = fold([requested(), started(), succeeded(t=2), cancelled(t=3)])[JOB]
    assert first_success.status is JobStatus.SUCCEEDED and first_success.cancel_reason is None


def test_a_request_carries_its_batch_and_deadline_into_the_state():
    deadline = at(30)
    request = JobRequested(
        job_id=JOB,
        occurred_at=T0,
        text="hello",
        model_version="m1",
        batch_id="batch_1",
        custom_id="row-7",
        deadline=deadline,
    )
    state = evolve(None, request)
    assert (state.batch_id, state.custom_id, state.deadline) == ("batch_1", "row-7", deadline)
    assert evolve(None, requested()).batch_id is None
