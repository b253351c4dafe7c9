"""Cancelled jobs in the projection and a rebuild: a log written by the real scripts (cancels of
queued and running jobs, deadlines at a job's start and finish, a batch's cancel) projects to the
fold of the log, and a rebuild from it gives the same rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from domain.job import JobStatus
from tests.integration.test_projector import expected, rows
from tests.integration.test_runs import cancel, consumer, read, request, submit
from tests.support import succeeded

BATCH = "7d1c1c55-58d9-4d0b-9a52-4b8c8f0b6f0e"


def cancel_every_way(redis_client, names) -> dict[str, tuple[str, bool]]:
    """A log with a job cancelled each way, and one that succeeded: job id -> its cancel
    reason ("" for the one that succeeded) and whether it started."""
    group = consumer(redis_client, names)
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    queued = submit(redis_client, names, request())
    running = submit(redis_client, names, request())
    expiring = submit(redis_client, names, request(deadline=soon))
    overrunning = submit(redis_client, names, request(deadline=soon))
    batched = submit(redis_client, names, request(batch_id=BATCH))
    finished = submit(redis_client, names, request())
    cancel(redis_client, names, queued.job_id)
    redis_client.set(names.batch_cancelled(0, BATCH), "1")
    entries = dict((r.job_id, (e, r)) for e, r in read(group))
    group.start([entries[j.job_id] for j in (running, overrunning, finished)], datetime.now(UTC))
    cancel(redis_client, names, running.job_id)
    time.sleep(0.4)
    group.start([entries[j.job_id] for j in (queued, expiring, batched)], datetime.now(UTC))
    for job in (running, overrunning, finished):
        group.finish(entries[job.job_id][0], succeeded(job.job_id, "c1"), request=job)
    return {
        queued.job_id: ("requested", False),
        running.job_id: ("requested", True),
        expiring.job_id: ("expired", False),
        overrunning.job_id: ("timed_out", True),
        batched.job_id: ("batch_cancelled", False),
        finished.job_id: ("", True),
    }


def test_every_kind_of_cancel_projects_as_the_log_folds(
    make_projector, redis_client, names, engine
):
    reasons = cancel_every_way(redis_client, names)
    make_projector().catch_up()
    projected = rows(engine)
    assert projected == expected(redis_client, names)
    for job_id, (reason, started) in reasons.items():
        state = projected[job_id]
        assert (state.started_at is not None) == started
        if not reason:
            assert state.status is JobStatus.SUCCEEDED
            continue
        assert state.status is JobStatus.CANCELLED and state.cancel_reason == reason
        assert state.finished_at is not None and state.result is None
        assert (state.batch_id == BATCH) == (reason == "batch_cancelled")


def test_a_rebuild_gives_the_cancelled_jobs_rows_again(
    make_projector, make_rebuild, redis_client, names, engine
):
    cancel_every_way(redis_client, names)
    make_projector().catch_up()
    projected = rows(engine)
    make_rebuild().run()
    assert rows(engine) == projected
