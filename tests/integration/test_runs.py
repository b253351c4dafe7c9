"""The scripts that decide a job's one terminal event (eventlog.runs), on a real Redis: START,
FINISH, CANCEL and NOTE against each other, deadlines and a batch's cancel."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from domain.cancellation import CancelReason
from domain.events import JobCancelled, JobRequested, JobRetrying, decode, is_terminal
from domain.ids import new_job_id
from eventlog import runs, scripts
from eventlog.group import ConsumerGroup
from eventlog.lanes import DEFAULT_LANE
from eventlog.names import Names
from eventlog.runs import DEADLINE, Cancel, Decision, LaneRuns, Verdict
from eventlog.submission import Retention, batch_submit_args, parse_batch
from eventlog.submission import submit as submit_event
from eventlog.writes import SlotWriter
from tests.support import MODEL_VERSION, event_types, job_events, succeeded

TTL_S = 3600


def request(deadline: datetime | None = None, batch_id: str = "") -> JobRequested:
    return JobRequested(
        job_id=new_job_id(0),
        occurred_at=datetime.now(UTC),
        text="hello there",
        model_version=MODEL_VERSION,
        batch_id=batch_id,
        deadline=deadline,
    )


def submit(client, names: Names, event: JobRequested) -> JobRequested:
    submit_event(client, names, event, Retention(job_index_ttl_s=TTL_S, idempotency_ttl_s=TTL_S))
    return event


def consumer(client, names: Names, name: str = "c1") -> ConsumerGroup:
    group = ConsumerGroup(
        client,
        names.events(0),
        names.workers_group,
        name,
        names.dead_letters(0),
        unfinished=names.queued(0, DEFAULT_LANE),
        runs=LaneRuns(names, 0, DEFAULT_LANE, names.workers_group, TTL_S),
    )
    group.ensure()
    return group


def read(group: ConsumerGroup) -> list[tuple[str, JobRequested]]:
    """The requests of one read, decoded; the other entries acknowledged, as a worker does."""
    requests, others = [], []
    for entry_id, fields in group.read(100, None):
        event = decode(fields)
        if isinstance(event, JobRequested):
            requests.append((entry_id, event))
        else:
            others.append(entry_id)
    if others:
        group.ack(*others)
    return requests


def cancel(client, names: Names, job_id: str, reason: str = CancelReason.REQUESTED) -> Decision:
    call = runs.cancel_call(
        names,
        names.workers_group,
        TTL_S,
        Cancel(job_id, DEFAULT_LANE, reason, "test", datetime.now(UTC)),
    )
    (reply,) = SlotWriter(client, names.deadlines(0)).scripts([(scripts.CANCEL, *call)])
    return runs.parse(reply)


def terminal(client, names: Names, job_id: str) -> list[str]:
    return [type(e).__name__ for e in job_events(client, names, job_id) if is_terminal(e)]


def unfinished(client, names: Names) -> int:
    return int(client.get(names.queued(0, DEFAULT_LANE)) or 0)


def pending(client, names: Names) -> int:
    return client.xpending(names.events(0), names.workers_group)["pending"]


def test_a_job_cancelled_while_queued_never_starts(redis_client, names):
    group = consumer(redis_client, names)
    job = submit(redis_client, names, request())
    assert unfinished(redis_client, names) == 1
    decision = cancel(redis_client, names, job.job_id)
    assert decision.verdict is Verdict.CANCELLED and decision.detail == "requested"
    assert unfinished(redis_client, names) == 0
    (entry,) = read(group)
    (begun,) = group.start([entry], datetime.now(UTC))
    assert begun.verdict is Verdict.ENDED and begun.cancel_reason == "requested"
    assert event_types(job_events(redis_client, names, job.job_id)) == [
        "JobRequested",
        "JobCancelled",
    ]
    cancelled = job_events(redis_client, names, job.job_id)[-1]
    assert isinstance(cancelled, JobCancelled) and cancelled.by == "test"
    # Acknowledged, and counted down once only.
    assert pending(redis_client, names) == 0 and unfinished(redis_client, names) == 0


def test_a_cancel_while_it_runs_drops_the_outcome(redis_client, names):
    group = consumer(redis_client, names)
    job = submit(redis_client, names, request())
    (entry,) = read(group)
    (begun,) = group.start([entry], datetime.now(UTC))
    assert begun.verdict is Verdict.STARTED
    assert cancel(redis_client, names, job.job_id).verdict is Verdict.CANCELLED
    # A retry announced now writes nothing after the cancel.
    retrying = JobRetrying(
        job_id=job.job_id,
        occurred_at=datetime.now(UTC),
        consumer="c1",
        attempt=1,
        error_type="E",
        error="e",
        delay_ms=1,
    )
    assert not group.note(retrying)
    finished = group.finish(entry[0], succeeded(job.job_id, "c1"), request=job)
    assert finished.verdict is Verdict.ENDED and finished.cancel_reason == "requested"
    assert event_types(job_events(redis_client, names, job.job_id)) == [
        "JobRequested",
        "JobStarted",
        "JobCancelled",
    ]
    assert pending(redis_client, names) == 0 and unfinished(redis_client, names) == 0


def test_a_cancel_after_the_outcome_changes_nothing(redis_client, names):
    group = consumer(redis_client, names)
    job = submit(redis_client, names, request())
    (entry,) = read(group)
    group.start([entry], datetime.now(UTC))
    assert group.finish(entry[0], succeeded(job.job_id, "c1"), request=job).verdict is (
        Verdict.WRITTEN
    )
    decision = cancel(redis_client, names, job.job_id)
    assert decision.verdict is Verdict.ENDED and decision.ended_as == "JobSucceeded"
    assert decision.cancel_reason is None
    assert terminal(redis_client, names, job.job_id) == ["JobSucceeded"]


def test_a_second_cancel_finds_the_first(redis_client, names):
    # No consumer has read this lane yet: it has no group, and the cancel needs none.
    job = submit(redis_client, names, request())
    assert cancel(redis_client, names, job.job_id).verdict is Verdict.CANCELLED
    again = cancel(redis_client, names, job.job_id, CancelReason.BATCH_CANCELLED)
    assert again.verdict is Verdict.ENDED and again.cancel_reason == "requested"
    assert terminal(redis_client, names, job.job_id) == ["JobCancelled"]


def test_the_race_of_cancel_and_outcome_has_one_winner(redis_client, names):
    """Cancels and outcomes sent at once, many times: every job ends once, and each side
    learns whether it won."""
    group = consumer(redis_client, names)
    jobs = [submit(redis_client, names, request()) for _ in range(60)]
    entries = read(group)
    group.start(entries, datetime.now(UTC))
    cancels: dict[str, Decision] = {}
    outcomes: dict[str, Decision] = {}
    go = threading.Barrier(2)

    def cancel_all() -> None:
        go.wait()
        for job in jobs:
            cancels[job.job_id] = cancel(redis_client, names, job.job_id)

    def finish_all() -> None:
        go.wait()
        for entry_id, job in entries:
            outcomes[job.job_id] = group.finish(entry_id, succeeded(job.job_id, "c1"), request=job)

    racers = [threading.Thread(target=cancel_all), threading.Thread(target=finish_all)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    for job in jobs:
        ends = terminal(redis_client, names, job.job_id)
        assert len(ends) == 1, ends
        won_cancel = cancels[job.job_id].verdict is Verdict.CANCELLED
        won_outcome = outcomes[job.job_id].verdict is Verdict.WRITTEN
        assert won_cancel != won_outcome
        assert ends == (["JobCancelled"] if won_cancel else ["JobSucceeded"])
    assert pending(redis_client, names) == 0 and unfinished(redis_client, names) == 0


def test_a_job_past_its_deadline_when_reached_expires_without_running(redis_client, names):
    group = consumer(redis_client, names)
    job = submit(redis_client, names, request(deadline=datetime.now(UTC) - timedelta(seconds=1)))
    member = runs.deadline_member(job.job_id, DEFAULT_LANE)
    assert redis_client.zscore(names.deadlines(0), member) is not None
    (entry,) = read(group)
    (begun,) = group.start([entry], datetime.now(UTC))
    assert begun.verdict is Verdict.CANCELLED and begun.detail == "expired"
    assert event_types(job_events(redis_client, names, job.job_id)) == [
        "JobRequested",
        "JobCancelled",
    ]
    assert job_events(redis_client, names, job.job_id)[-1].reason == "expired"
    assert redis_client.zscore(names.deadlines(0), member) is None
    assert pending(redis_client, names) == 0 and unfinished(redis_client, names) == 0


def test_a_job_that_runs_past_its_deadline_is_timed_out_at_its_finish(redis_client, names):
    group = consumer(redis_client, names)
    job = submit(redis_client, names, request(deadline=datetime.now(UTC) + timedelta(seconds=0.3)))
    (entry,) = read(group)
    assert group.start([entry], datetime.now(UTC))[0].verdict is Verdict.STARTED
    time.sleep(0.4)
    finished = group.finish(entry[0], succeeded(job.job_id, "c1"), request=job)
    assert finished.verdict is Verdict.CANCELLED and finished.detail == "timed_out"
    assert event_types(job_events(redis_client, names, job.job_id)) == [
        "JobRequested",
        "JobStarted",
        "JobCancelled",
    ]
    assert redis_client.zcard(names.deadlines(0)) == 0
    assert pending(redis_client, names) == 0 and unfinished(redis_client, names) == 0


def test_a_job_that_finishes_in_time_leaves_the_deadlines(redis_client, names):
    group = consumer(redis_client, names)
    job = submit(redis_client, names, request(deadline=datetime.now(UTC) + timedelta(hours=1)))
    (entry,) = read(group)
    group.start([entry], datetime.now(UTC))
    assert group.finish(entry[0], succeeded(job.job_id, "c1"), request=job).verdict is (
        Verdict.WRITTEN
    )
    assert redis_client.zcard(names.deadlines(0)) == 0


def test_a_deadline_cancel_waits_for_the_deadline_and_names_how_far_the_job_got(
    redis_client, names
):
    group = consumer(redis_client, names)
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    queued = submit(redis_client, names, request(deadline=soon))
    running = submit(redis_client, names, request(deadline=soon))
    later = submit(redis_client, names, request(deadline=soon + timedelta(hours=1)))
    entries = read(group)
    group.start([e for e in entries if e[1].job_id == running.job_id], datetime.now(UTC))
    assert cancel(redis_client, names, queued.job_id, DEADLINE).verdict is Verdict.NOT_DUE
    time.sleep(0.4)
    expired = cancel(redis_client, names, queued.job_id, DEADLINE)
    timed_out = cancel(redis_client, names, running.job_id, DEADLINE)
    assert (expired.verdict, expired.detail) == (Verdict.CANCELLED, "expired")
    assert (timed_out.verdict, timed_out.detail) == (Verdict.CANCELLED, "timed_out")
    assert cancel(redis_client, names, later.job_id, DEADLINE).verdict is Verdict.NOT_DUE
    # A job without a deadline is never due.
    plain = submit(redis_client, names, request())
    assert cancel(redis_client, names, plain.job_id, DEADLINE).verdict is Verdict.NOT_DUE
    members = redis_client.zrange(names.deadlines(0), 0, -1)
    assert members == [runs.deadline_member(later.job_id, DEFAULT_LANE)]
    # The consumer of the running job writes nothing more.
    (entry_id,) = [e for e, r in entries if r.job_id == running.job_id]
    assert group.finish(entry_id, succeeded(running.job_id), request=running).verdict is (
        Verdict.ENDED
    )
    assert terminal(redis_client, names, running.job_id) == ["JobCancelled"]


def test_a_cancelled_batchs_jobs_end_at_their_start_or_finish(redis_client, names):
    group = consumer(redis_client, names)
    batch_id = "7d1c1c55-58d9-4d0b-9a52-4b8c8f0b6f0e"
    running = submit(redis_client, names, request(batch_id=batch_id))
    (first,) = read(group)
    group.start([first], datetime.now(UTC))
    queued = submit(redis_client, names, request(batch_id=batch_id))
    other = submit(redis_client, names, request(batch_id="another"))
    redis_client.set(names.batch_cancelled(0, batch_id), "1")
    entries = read(group)
    begun = group.start(entries, datetime.now(UTC))
    by_job = {r.job_id: d for (_, r), d in zip(entries, begun, strict=True)}
    assert by_job[queued.job_id].verdict is Verdict.CANCELLED
    assert by_job[queued.job_id].detail == "batch_cancelled"
    assert by_job[other.job_id].verdict is Verdict.STARTED
    finished = group.finish(first[0], succeeded(running.job_id), request=running)
    assert (finished.verdict, finished.detail) == (Verdict.CANCELLED, "batch_cancelled")
    assert terminal(redis_client, names, running.job_id) == ["JobCancelled"]
    assert terminal(redis_client, names, queued.job_id) == ["JobCancelled"]


def test_a_batch_submission_puts_its_deadlines_in(redis_client, names):
    due = datetime.now(UTC) + timedelta(minutes=5)
    events = [request(deadline=due), request(), request(deadline=due + timedelta(seconds=1))]
    keys, argv = batch_submit_args(names, 0, events, TTL_S)
    replies = parse_batch(redis_client.eval(scripts.BATCH_SUBMIT, len(keys), *keys, *argv))
    assert all(reply.created for reply in replies)
    scored = dict(redis_client.zrange(names.deadlines(0), 0, -1, withscores=True))
    assert scored == {
        runs.deadline_member(events[0].job_id, DEFAULT_LANE): float(runs.deadline_ms(due)),
        runs.deadline_member(events[2].job_id, DEFAULT_LANE): float(
            runs.deadline_ms(due + timedelta(seconds=1))
        ),
    }
    # Sent again, nothing is added twice (the jobs are on the log already).
    redis_client.eval(scripts.BATCH_SUBMIT, len(keys), *keys, *argv)
    assert redis_client.zcard(names.deadlines(0)) == 2


def test_a_group_that_tracks_no_runs_finishes_by_ownership_alone(redis_client, names):
    """Operator tools and old tests build groups without runs: FINISH as before."""
    job = submit(redis_client, names, request())
    group = ConsumerGroup(
        redis_client, names.events(0), names.workers_group, "c", names.dead_letters(0)
    )
    group.ensure()
    (entry,) = group.read(10, None)
    assert group.finish(entry[0], succeeded(job.job_id)).verdict is Verdict.WRITTEN
    assert group.finish(entry[0], succeeded(job.job_id)).verdict is Verdict.SUPERSEDED
    with pytest.raises(ValueError, match="does not track runs"):
        group.start([], datetime.now(UTC))
