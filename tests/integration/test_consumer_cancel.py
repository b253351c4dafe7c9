"""The consumer and cancelled jobs on a real Redis: a job cancelled while queued never runs, one
cancelled while it runs gets no outcome and no more retries, deadlines end jobs in the queue and
while they run (the sweeper), and a cancelled job's entry goes to no dead-letter stream."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from classifier.registry import Prediction
from consumer.deadlines import DeadlineSweeper
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from domain.cancellation import CancelReason
from domain.events import JobCancelled, JobRequested, is_terminal
from domain.ids import new_job_id
from eventlog import deadletters, runs, scripts
from eventlog.lanes import DEFAULT_LANE
from eventlog.names import Names
from eventlog.runs import Cancel
from eventlog.submission import Retention
from eventlog.submission import submit as submit_event
from eventlog.writes import SlotWriter
from tests.support import MODEL_VERSION, event_types, job_events

SPAM = "limited time offer, click now to claim your free prize"


def submit(client, names: Names, text: str = SPAM, deadline: datetime | None = None) -> str:
    event = JobRequested(
        job_id=new_job_id(0),
        occurred_at=datetime.now(UTC),
        text=text,
        model_version=MODEL_VERSION,
        deadline=deadline,
    )
    retention = Retention(job_index_ttl_s=3600, idempotency_ttl_s=3600)
    return submit_event(client, names, event, retention).job_id


def cancel(client, names: Names, job_id: str) -> runs.Decision:
    call = runs.cancel_call(
        names,
        names.workers_group,
        3600,
        Cancel(job_id, DEFAULT_LANE, CancelReason.REQUESTED, "test", datetime.now(UTC)),
    )
    (reply,) = SlotWriter(client, names.deadlines(0)).scripts([(scripts.CANCEL, *call)])
    return runs.parse(reply)


def drain(worker) -> None:
    while worker.poll_once():
        pass


def pending(client, names: Names) -> int:
    return client.xpending(names.events(0), names.workers_group)["pending"]


class CountingRunner(InferenceRunner):
    """Records the texts it predicts; `on_predict(text, attempt)` runs before each single
    prediction."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.predicted: list[tuple[str, int]] = []
        self.on_predict = lambda text, attempt: None

    def predict(self, text: str, model_version: str, attempt: int) -> Prediction:
        self.predicted.append((text, attempt))
        self.on_predict(text, attempt)
        return super().predict(text, model_version, attempt)


@pytest.fixture
def make_worker(make_worker_and_runner):
    return lambda *args, **overrides: make_worker_and_runner(
        *args, runner_class=CountingRunner, **overrides
    )


def test_a_job_cancelled_while_queued_is_never_started(make_worker, redis_client, names):
    worker, _ = make_worker()
    cancelled = submit(redis_client, names)
    kept = submit(redis_client, names)
    alone = submit(redis_client, names, "[[transient:1]] runs alone")
    cancelled_alone = submit(redis_client, names, "[[transient:1]] cancelled, runs alone")
    assert cancel(redis_client, names, cancelled).verdict is runs.Verdict.CANCELLED
    assert cancel(redis_client, names, cancelled_alone).verdict is runs.Verdict.CANCELLED
    drain(worker)
    for job_id in (cancelled, cancelled_alone):
        assert event_types(job_events(redis_client, names, job_id)) == [
            "JobRequested",
            "JobCancelled",
        ]
    assert event_types(job_events(redis_client, names, kept))[-1] == "JobSucceeded"
    assert event_types(job_events(redis_client, names, alone))[-1] == "JobSucceeded"
    assert pending(redis_client, names) == 0
    assert int(redis_client.get(names.queued(0, DEFAULT_LANE))) == 0


def test_a_job_cancelled_between_attempts_is_not_tried_again(make_worker, redis_client, names):
    worker, runner = make_worker(max_attempts=5)
    job_id = submit(redis_client, names, "[[transient:4]] flaky")
    # The cancel lands while the first attempt runs, which then fails transiently.
    runner.on_predict = lambda text, attempt: cancel(redis_client, names, job_id)
    drain(worker)
    assert runner.predicted == [("[[transient:4]] flaky", 1)]
    assert event_types(job_events(redis_client, names, job_id)) == [
        "JobRequested",
        "JobStarted",
        "JobCancelled",
    ]
    assert pending(redis_client, names) == 0


def test_a_job_cancelled_while_it_runs_gets_no_outcome(make_worker, redis_client, names):
    worker, runner = make_worker()
    job_id = submit(redis_client, names, "[[sleep_ms:50]] slow")
    runner.on_predict = lambda text, attempt: cancel(redis_client, names, job_id)
    drain(worker)
    events = job_events(redis_client, names, job_id)
    assert event_types(events) == ["JobRequested", "JobStarted", "JobCancelled"]
    assert events[-1].reason == "requested"


def test_a_job_past_its_deadline_expires_when_the_consumer_reaches_it(
    make_worker, redis_client, names
):
    worker, runner = make_worker()
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = submit(redis_client, names, deadline=past)
    expired_alone = submit(redis_client, names, "[[transient:1]] too late", deadline=past)
    on_time = submit(redis_client, names, deadline=datetime.now(UTC) + timedelta(hours=1))
    drain(worker)
    for job_id in (expired, expired_alone):
        events = job_events(redis_client, names, job_id)
        assert event_types(events) == ["JobRequested", "JobCancelled"]
        assert events[-1].reason == "expired" and events[-1].by == "c1"
    assert event_types(job_events(redis_client, names, on_time))[-1] == "JobSucceeded"
    assert runner.predicted == []  # the one alone never ran
    assert redis_client.zcard(names.deadlines(0)) == 0


def test_the_sweeper_cancels_queued_and_running_jobs_at_their_deadline(
    make_worker, redis_url, redis_client, names
):
    worker, runner = make_worker()
    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    running = submit(redis_client, names, "[[sleep_ms:10]] long", deadline=soon)
    settings = ConsumerSettings(
        redis_url=redis_url, stream_prefix=names.prefix, consumer_name="sweeper"
    )
    sweep = DeadlineSweeper(settings, redis_client)
    jobs: dict[str, str] = {}

    def meanwhile(text: str, attempt: int) -> None:
        # While `running` runs: two more jobs wait in the queue, the deadline passes, the
        # sweep comes.
        jobs["queued"] = submit(redis_client, names, deadline=soon)
        jobs["later"] = submit(redis_client, names, deadline=soon + timedelta(hours=1))
        time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.05)
        jobs["swept"] = str(sweep.sweep())

    runner.on_predict = meanwhile
    worker.poll_once()
    assert jobs["swept"] == "2"  # queued and running; `later` is not due
    queued_events = job_events(redis_client, names, jobs["queued"])
    assert event_types(queued_events) == ["JobRequested", "JobCancelled"]
    assert queued_events[-1].reason == "expired" and queued_events[-1].by == "sweeper"
    running_events = job_events(redis_client, names, running)
    assert event_types(running_events) == ["JobRequested", "JobStarted", "JobCancelled"]
    assert running_events[-1].reason == "timed_out"
    assert redis_client.zrange(names.deadlines(0), 0, -1) == [
        runs.deadline_member(jobs["later"], DEFAULT_LANE)
    ]
    assert sweep.sweep() == 0
    drain(worker)  # the cancelled one is acknowledged unstarted; `later` runs
    later = [e for e in job_events(redis_client, names, jobs["later"]) if is_terminal(e)]
    assert [type(e).__name__ for e in later] == ["JobSucceeded"]
    assert event_types(job_events(redis_client, names, jobs["queued"])) == [
        "JobRequested",
        "JobCancelled",
    ]
    assert pending(redis_client, names) == 0


def test_a_cancelled_job_goes_to_no_dead_letter_stream(make_worker, redis_client, names):
    worker, _ = make_worker("w", claim_idle_ms=100, claim_interval_ms=10, max_deliveries=1)
    job_id = submit(redis_client, names)
    (entry_id, _), *_ = redis_client.xrange(names.events(0))
    # Cancelled while queued, then taken by two consumers in turn that died: over the limit.
    assert cancel(redis_client, names, job_id).verdict is runs.Verdict.CANCELLED
    redis_client.xreadgroup(names.workers_group, "ghost-1", {names.events(0): ">"}, count=1)
    redis_client.xclaim(names.events(0), names.workers_group, "ghost-2", 0, [entry_id])
    time.sleep(0.15)
    drain(worker)
    terminal = [e for e in job_events(redis_client, names, job_id) if is_terminal(e)]
    assert len(terminal) == 1 and isinstance(terminal[0], JobCancelled)
    assert deadletters.list_letters(redis_client, names, [0]) == []
    assert pending(redis_client, names) == 0
