"""The consumer against a real Redis: outcomes, retries, timeouts and crash recovery."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest
import redis

from consumer.worker import Worker
from domain.events import JobFailed, JobRetrying, JobSucceeded, decode, is_terminal
from eventlog.lanes import DEFAULT_LANE
from eventlog.names import Names
from tests.support import event_types, job_events, submit

SPAM = "limited time offer, click now to claim your free prize"


@pytest.fixture
def make_worker(make_worker_and_runner):
    return lambda *args, **overrides: make_worker_and_runner(*args, **overrides)[0]


def drain(worker: Worker) -> None:
    """Poll until the worker has nothing left to read."""
    while worker.poll_once():
        pass


def pending(client: redis.Redis, names: Names) -> int:
    return client.xpending(names.events(0), names.workers_group)["pending"]


def test_a_job_succeeds_and_every_entry_is_acknowledged(make_worker, redis_client, names):
    worker = make_worker()
    job_id = submit(redis_client, names, SPAM)
    drain(worker)
    events = job_events(redis_client, names, job_id)
    assert event_types(events) == ["JobRequested", "JobStarted", "JobSucceeded"]
    outcome = events[-1]
    assert isinstance(outcome, JobSucceeded)
    assert outcome.label == "spam"
    assert outcome.model_version == "spam-tfidf-lr-v1"
    assert outcome.score == pytest.approx(outcome.probabilities["spam"])
    assert outcome.consumer == "c1" and outcome.attempt == 1
    assert pending(redis_client, names) == 0


def test_ham_is_ham(make_worker, redis_client, names):
    worker = make_worker()
    job_id = submit(redis_client, names, "are we still on for lunch tomorrow at noon?")
    drain(worker)
    assert job_events(redis_client, names, job_id)[-1].label == "ham"


def test_transient_failures_are_retried_and_each_retry_is_an_event(
    make_worker, redis_client, names
):
    worker = make_worker(max_attempts=3)
    job_id = submit(redis_client, names, "[[transient:2]] hello there")
    drain(worker)
    events = job_events(redis_client, names, job_id)
    assert event_types(events) == [
        "JobRequested",
        "JobStarted",
        "JobRetrying",
        "JobRetrying",
        "JobSucceeded",
    ]
    retries = [e for e in events if isinstance(e, JobRetrying)]
    assert [r.attempt for r in retries] == [1, 2]
    assert all(r.error_type == "TransientInferenceError" for r in retries)
    assert all(0 <= r.delay_ms <= 10 for r in retries)
    assert events[-1].attempt == 3


def test_exhausted_retries_fail_with_the_reason(make_worker, redis_client, names):
    worker = make_worker(max_attempts=3)
    job_id = submit(redis_client, names, "[[transient:9]] hello")
    drain(worker)
    events = job_events(redis_client, names, job_id)
    assert event_types(events).count("JobRetrying") == 2
    failed = events[-1]
    assert isinstance(failed, JobFailed)
    assert failed.transient is True
    assert failed.error.startswith("gave up after 3 attempts: injected transient fault")


def test_permanent_failure_is_not_retried(make_worker, redis_client, names):
    worker = make_worker()
    job_id = submit(redis_client, names, "[[permanent]] hello")
    drain(worker)
    events = job_events(redis_client, names, job_id)
    assert event_types(events) == ["JobRequested", "JobStarted", "JobFailed"]
    assert events[-1].transient is False
    assert events[-1].error_type == "InferenceError"
    assert "injected permanent fault" in events[-1].error


def test_a_slow_inference_times_out_and_the_worker_goes_on(make_worker, redis_client, names):
    worker = make_worker(inference_timeout_ms=100)
    slow = submit(redis_client, names, "[[sleep_ms:2000]] hello")
    quick = submit(redis_client, names, SPAM)
    began = time.monotonic()
    drain(worker)
    assert time.monotonic() - began < 1.5  # did not wait for the stuck prediction
    timed_out = job_events(redis_client, names, slow)[-1]
    assert isinstance(timed_out, JobFailed)
    assert timed_out.error_type == "InferenceTimeoutError"
    assert timed_out.error == "inference timed out after 100 ms"
    assert isinstance(job_events(redis_client, names, quick)[-1], JobSucceeded)


def test_unknown_model_version_fails_the_job(make_worker, redis_client, names):
    worker = make_worker()
    job_id = submit(redis_client, names, "hello", model_version="no-such-model")
    drain(worker)
    failed = job_events(redis_client, names, job_id)[-1]
    assert isinstance(failed, JobFailed)
    assert failed.error_type == "UnknownModelVersionError"


def test_undecodable_request_fails_its_job(make_worker, redis_client, names):
    worker = make_worker()
    job_id = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    redis_client.xadd(names.events(0), {"type": "JobRequested", "v": "1", "job_id": job_id})
    drain(worker)
    entries = redis_client.xrange(names.events(0))
    assert [fields["type"] for _, fields in entries] == ["JobRequested", "JobFailed"]
    failed = decode(entries[1][1])
    assert isinstance(failed, JobFailed) and failed.job_id == job_id
    assert failed.error_type == "InvalidEventError"
    assert "lacks field" in failed.error
    assert pending(redis_client, names) == 0


def test_a_dead_consumers_job_is_claimed_and_finished_exactly_once(
    make_worker, redis_client, names
):
    rescuer = make_worker("c2", claim_idle_ms=100, claim_interval_ms=10)
    job_id = submit(redis_client, names, SPAM)
    # c1 takes the entry and dies before finishing: it stays pending for c1.
    redis_client.xreadgroup(names.workers_group, "c1", {names.events(0): ">"}, count=1)
    assert pending(redis_client, names) == 1
    time.sleep(0.15)
    drain(rescuer)
    events = job_events(redis_client, names, job_id)
    assert event_types(events) == ["JobRequested", "JobStarted", "JobSucceeded"]
    assert events[-1].consumer == "c2"
    assert pending(redis_client, names) == 0


def test_a_slow_consumer_that_lost_its_entry_cannot_write_a_second_outcome(
    make_worker, redis_client, names
):
    job_id = submit(redis_client, names, "[[sleep_ms:400]] " + SPAM)
    slow = make_worker("slow", claim_idle_ms=100, claim_interval_ms=10)
    fast = make_worker("fast", claim_idle_ms=100, claim_interval_ms=10)
    entries = slow.group.lane(DEFAULT_LANE).read(16, 10)  # slow takes the job ...
    assert len(entries) == 1
    worker_thread = threading.Thread(target=slow.process, args=({DEFAULT_LANE: entries},))
    worker_thread.start()  # ... and is still predicting when fast claims the idle entry
    time.sleep(0.2)
    drain(fast)
    worker_thread.join()
    drain(fast)
    outcomes = [e for e in job_events(redis_client, names, job_id) if is_terminal(e)]
    assert len(outcomes) == 1
    assert outcomes[0].consumer == "fast"
    assert pending(redis_client, names) == 0


def test_a_live_consumers_long_job_is_not_claimed(make_worker, redis_client, names):
    # Three idle windows long; the heartbeat beats three times a window, so one beat late on a
    # busy machine (or a slower cluster client) still keeps the entry.
    job_id = submit(redis_client, names, "[[sleep_ms:1800]] " + SPAM)
    busy = make_worker("busy", claim_idle_ms=600, inference_timeout_ms=5000)
    other = make_worker("other", claim_idle_ms=600, claim_interval_ms=10)
    busy.held.start()
    thread = threading.Thread(target=busy.poll_once)
    thread.start()
    # Only once busy holds the job: a read of other's before busy's would simply take it.
    while not any(
        c["name"] == "busy" and c["pending"]
        for c in redis_client.xinfo_consumers(names.events(0), names.workers_group)
    ):
        time.sleep(0.005)
    deadline = time.monotonic() + 2.2
    while time.monotonic() < deadline:  # other keeps looking for idle entries meanwhile
        other.poll_once()
    thread.join()
    busy.held.close()
    drain(other)
    events = job_events(redis_client, names, job_id)
    assert event_types(events) == ["JobRequested", "JobStarted", "JobSucceeded"]
    assert {e.consumer for e in events[1:]} == {"busy"}


def test_a_request_delivered_too_often_is_dead_lettered_and_can_be_redriven(
    make_worker, redis_client, names
):
    from eventlog import deadletters

    worker = make_worker("w", claim_idle_ms=100, claim_interval_ms=10, max_deliveries=3)
    job_id = submit(redis_client, names, SPAM)
    (entry_id, _), *_ = redis_client.xrange(names.events(0))
    # Three consumers took the entry in turn and died: three deliveries.
    redis_client.xreadgroup(names.workers_group, "ghost-1", {names.events(0): ">"}, count=1)
    for ghost in ("ghost-2", "ghost-3"):
        redis_client.xclaim(names.events(0), names.workers_group, ghost, 0, [entry_id])
    time.sleep(0.15)
    drain(worker)  # the fourth delivery goes over the limit
    failed = job_events(redis_client, names, job_id)[-1]
    assert isinstance(failed, JobFailed)
    assert failed.error_type == "DeliveryLimitExceededError"
    assert failed.error.startswith("delivered 4 times without finishing (limit 3)")
    assert pending(redis_client, names) == 0
    letters = deadletters.list_letters(redis_client, names, [0])
    assert [(letter.job_id, letter.deliveries) for letter in letters] == [(job_id, 4)]
    assert letters[0].request is not None and letters[0].request.text == SPAM

    [(redriven, new_job)] = deadletters.redrive(
        redis_client, names, [0], [letters[0].entry_id], 3600
    )
    assert redriven.entry_id == letters[0].entry_id
    assert new_job != job_id
    drain(worker)
    assert job_events(redis_client, names, new_job)[-1].label == "spam"
    assert deadletters.list_letters(redis_client, names, [0]) == []
    assert event_types(job_events(redis_client, names, job_id)).count("JobFailed") == 1


def test_a_stopping_consumer_hands_back_what_it_has_not_started(make_worker, redis_client, names):
    jobs = [submit(redis_client, names, f"[[sleep_ms:300]] note {i}") for i in range(4)]
    leaving = make_worker("leaving", claim_idle_ms=60000, batch_max_size=4)
    stop = threading.Event()
    thread = threading.Thread(target=leaving.run, args=(stop,))
    thread.start()
    time.sleep(0.1)  # it holds all four and works on the first
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    # Handed-back entries look idle for the whole claim threshold: claimable at once.
    taker = make_worker("taker", claim_idle_ms=60000, claim_interval_ms=10)
    drain(taker)
    outcomes = [job_events(redis_client, names, job)[-1] for job in jobs]
    assert all(isinstance(e, JobSucceeded) for e in outcomes)
    assert outcomes[0].consumer == "leaving"
    assert {e.consumer for e in outcomes[1:]} == {"taker"}
    assert pending(redis_client, names) == 0


def test_a_batch_interrupted_by_an_error_is_not_kept_alive(make_worker, redis_client, names):
    worker = make_worker("w", claim_idle_ms=200, claim_interval_ms=10, batch_max_size=5)
    jobs = [submit(redis_client, names, f"note {i}") for i in range(3)]
    lane = worker.group.lane(DEFAULT_LANE)
    original = lane.finish_all

    def redis_dies(*_args, **_kwargs):
        raise redis.ConnectionError("connection lost")

    lane.finish_all = redis_dies
    with pytest.raises(redis.ConnectionError):
        worker.poll_once()
    assert pending(redis_client, names) == 3
    lane.finish_all = original
    worker.held.start()
    time.sleep(0.3)  # a heartbeat would keep the entries from ever looking idle
    drain(worker)
    worker.held.close()
    assert all(isinstance(job_events(redis_client, names, j)[-1], JobSucceeded) for j in jobs)


def test_the_dead_letters_command_lists_and_redrives(redis_url, redis_client, names):
    from eventlog.deadletters import dead_letter_fields

    job_id = submit(redis_client, names, SPAM)
    (entry_id, fields), *_ = redis_client.xrange(names.events(0))
    letter = dead_letter_fields(entry_id, fields, 6, "delivered 6 times", datetime.now(UTC))
    letter_id = redis_client.xadd(names.dead_letters(0), letter)
    env = {**os.environ, "REDIS_URL": redis_url, "STREAM_PREFIX": names.prefix}

    def command(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "consumer", "dead-letters", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    listing = command("list")
    assert f"0/{letter_id}  job {job_id}  deliveries 6" in listing
    assert "1 dead letters" in listing
    redriven = command("redrive", "--all")
    assert f"0/{letter_id}  job {job_id} -> new job " in redriven
    assert redis_client.xlen(names.dead_letters(0)) == 0
    new_job = redriven.split("-> new job ")[1].split()[0]
    assert job_events(redis_client, names, new_job)[0].text == SPAM
