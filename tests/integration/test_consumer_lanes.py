"""The consumer serves every lane of its partition, fairly, against a real Redis: interactive
lanes before bulk ones, bulk lanes (tenants) in equal shares, lanes that appear late, and each
job's events, claims, dead letters and hand-backs in its own lane."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
import redis

from consumer.worker import Worker
from domain.events import (
    Event,
    JobFailed,
    JobRequested,
    JobSucceeded,
    decode,
    encode,
    is_terminal,
)
from domain.ids import new_job_id
from domain.lanes import BULK, INTERACTIVE
from eventlog import deadletters, scripts
from eventlog import group as group_module
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from eventlog.submission import Retention, batch_submit_args, parse_batch, submit
from tests.support import MODEL_VERSION, event_types

SPAM = "limited time offer, click now to claim your free prize"
BULK_ACME = Lane(BULK, "acme")
BULK_BETA = Lane(BULK, "beta")
INTERACTIVE_ACME = Lane(INTERACTIVE, "acme")
RETENTION = Retention(job_index_ttl_s=3600, idempotency_ttl_s=3600)


@pytest.fixture
def make_worker(make_worker_and_runner):
    return lambda *args, **overrides: make_worker_and_runner(*args, **overrides)[0]


def request(text: str, lane: Lane) -> JobRequested:
    return JobRequested(
        job_id=new_job_id(0),
        occurred_at=datetime.now(UTC),
        text=text,
        model_version=MODEL_VERSION,
        tenant=lane.tenant,
        lane=lane.kind,
    )


def submit_to(client: redis.Redis, names: Names, lane: Lane, text: str = SPAM) -> str:
    """One job into `lane`, the way the API accepts a job."""
    return submit(client, names, request(text, lane), RETENTION).job_id


def submit_many(client: redis.Redis, names: Names, lane: Lane, texts: Iterable[str]) -> list[str]:
    """Jobs into `lane`, by BATCH_SUBMIT calls of up to 500 jobs, the way the API accepts a
    batch."""
    events = [request(text, lane) for text in texts]
    for at in range(0, len(events), 500):
        keys, argv = batch_submit_args(names, 0, events[at : at + 500], 3600)
        parse_batch(client.eval(scripts.BATCH_SUBMIT, len(keys), *keys, *argv))
    return [event.job_id for event in events]


def lane_events(client: redis.Redis, names: Names, lane: Lane) -> list[Event]:
    return [decode(fields) for _, fields in client.xrange(names.lane(0, lane))]


def outcomes(client: redis.Redis, names: Names, lane: Lane) -> list[Event]:
    return [event for event in lane_events(client, names, lane) if is_terminal(event)]


def job_events(client: redis.Redis, names: Names, lane: Lane, job_id: str) -> list[Event]:
    return [event for event in lane_events(client, names, lane) if event.job_id == job_id]


def pending(client: redis.Redis, names: Names, lane: Lane) -> int:
    return client.xpending(names.lane(0, lane), names.workers_group)["pending"]


def drain(*workers: Worker) -> None:
    """Poll until no worker finds anything twice in a row (a round that finds nothing looks
    for new lanes, which the next round reads)."""
    idle = 0
    while idle < 2:
        idle = idle + 1 if not sum(worker.poll_once() for worker in workers) else 0


def test_an_interactive_job_is_served_before_a_bulk_backlog(make_worker, redis_client, names):
    size = 64
    backlog = submit_many(redis_client, names, BULK_ACME, (f"bulk {i}" for i in range(2000)))
    warm_up = submit_to(redis_client, names, INTERACTIVE_ACME)
    worker = make_worker(batch_max_size=size)
    assert worker.group.lanes == [INTERACTIVE_ACME, DEFAULT_LANE, BULK_ACME]  # served first
    # The whole backlog is older than the interactive job; the first round still reads the
    # interactive lanes only.
    assert worker.poll_once() == 1
    assert event_types(job_events(redis_client, names, INTERACTIVE_ACME, warm_up))[-1] == (
        "JobSucceeded"
    )
    assert outcomes(redis_client, names, BULK_ACME) == []
    # Then a round of every lane: its JobStarted and outcome, which the group reads too, and
    # a bulk share.
    assert worker.poll_once() == 2 + size
    urgent = submit_to(redis_client, names, INTERACTIVE_ACME, "are we still on for lunch?")
    while not outcomes(redis_client, names, INTERACTIVE_ACME)[1:]:
        worker.poll_once()
    assert job_events(redis_client, names, INTERACTIVE_ACME, urgent)[-1].label == "ham"
    assert len(outcomes(redis_client, names, BULK_ACME)) < 2 * size
    drain(worker)
    assert sorted(e.job_id for e in outcomes(redis_client, names, BULK_ACME)) == sorted(backlog)
    assert pending(redis_client, names, BULK_ACME) == 0


def test_interactive_lanes_go_first_but_never_starve_the_bulk_ones(
    make_worker, redis_client, names
):
    submit_many(redis_client, names, BULK_ACME, ["bulk"] * 40)
    worker = make_worker(batch_max_size=8)
    jobs = [submit_to(redis_client, names, DEFAULT_LANE, f"note {i}") for i in range(20)]
    assert worker.poll_once() == 8  # the interactive lane alone, up to the batch size
    assert outcomes(redis_client, names, BULK_ACME) == []
    # Then every lane (a bulk share, and the interactive lane's share too), then the
    # interactive lanes alone again: interactive work every round, bulk work every other one.
    assert worker.poll_once() == 16
    assert len(outcomes(redis_client, names, BULK_ACME)) == 8
    assert len(outcomes(redis_client, names, DEFAULT_LANE)) == 16
    # A steady stream of interactive jobs (one more before every round) still lets the bulk
    # lane through every other round.
    for i in range(8):
        submit_to(redis_client, names, DEFAULT_LANE, f"more {i}")
        worker.poll_once()
    assert len(outcomes(redis_client, names, BULK_ACME)) >= 8 + 3 * 8
    drain(worker)
    assert len(outcomes(redis_client, names, DEFAULT_LANE)) == len(jobs) + 8
    assert len(outcomes(redis_client, names, BULK_ACME)) == 40


def test_bulk_lanes_drain_in_equal_shares(make_worker, redis_client, names):
    size = 64
    big = submit_many(redis_client, names, BULK_ACME, (f"acme {i}" for i in range(600)))
    small = submit_many(redis_client, names, BULK_BETA, (f"beta {i}" for i in range(150)))
    worker = make_worker(batch_max_size=size)
    assert worker.poll_once() == size  # size / 2 of each
    assert len(outcomes(redis_client, names, BULK_ACME)) == size // 2
    assert len(outcomes(redis_client, names, BULK_BETA)) == size // 2
    while len(outcomes(redis_client, names, BULK_BETA)) < len(small):
        worker.poll_once()
    # The smaller backlog is done first, with the bigger one about as far along: each had the
    # same share of every round.
    done = len(outcomes(redis_client, names, BULK_ACME))
    assert len(small) - size // 2 <= done <= len(small) + size // 2
    drain(worker)
    assert sorted(e.job_id for e in outcomes(redis_client, names, BULK_ACME)) == sorted(big)
    assert sorted(e.job_id for e in outcomes(redis_client, names, BULK_BETA)) == sorted(small)


def test_a_lane_that_appears_later_is_found_and_read_from_its_start(
    make_worker, redis_client, names
):
    worker = make_worker(lanes_refresh_ms=60000)
    assert worker.group.lanes == [DEFAULT_LANE]
    assert worker.poll_once() == 0
    late = Lane(BULK, "newco")
    jobs = submit_many(redis_client, names, late, ["hello", SPAM, "see you soon"])
    drain(worker)  # the first round finds nothing and looks; the next reads the new lane
    assert worker.group.lanes == [DEFAULT_LANE, late]
    assert sorted(e.job_id for e in outcomes(redis_client, names, late)) == sorted(jobs)
    (group,) = redis_client.xinfo_groups(names.lane(0, late))
    assert group["name"] == names.workers_group and group["pending"] == 0


def test_a_running_worker_finds_new_lanes_on_its_own(make_worker, redis_client, names):
    worker = make_worker(lanes_refresh_ms=50, read_block_ms=100)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        late = Lane(INTERACTIVE, "newco")
        job_id = submit_to(redis_client, names, late)
        deadline = time.monotonic() + 10
        while not outcomes(redis_client, names, late) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert [e.job_id for e in outcomes(redis_client, names, late)] == [job_id]


def test_racing_workers_write_one_outcome_per_job_into_its_own_lane(
    make_worker, redis_client, names
):
    lanes = [DEFAULT_LANE, INTERACTIVE_ACME, BULK_ACME, BULK_BETA]
    jobs = {
        lane: submit_many(redis_client, names, lane, (f"{lane.name} {i}" for i in range(150)))
        for lane in lanes
    }
    overrides = {"batch_max_size": 32, "claim_idle_ms": 200, "claim_interval_ms": 10}
    workers = [make_worker(name, **overrides) for name in ("w1", "w2")]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
            len(outcomes(redis_client, names, lane)) < len(jobs[lane]) for lane in lanes
        ):
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    # What the two held when they stopped (the outcome events they read back) was handed back.
    drain(make_worker("w3", **overrides))
    consumers = set()
    for lane in lanes:
        events = lane_events(redis_client, names, lane)
        by_job: dict[str, list[str]] = {}
        for event in events:
            by_job.setdefault(event.job_id, []).append(type(event).__name__)
        # Every event of a lane's jobs is in that lane, and only theirs: in order, one outcome.
        # A job claimed from a worker still running it (claim_idle_ms is short, and a loaded
        # machine slow) starts again: one JobStarted per delivery, still one outcome.
        assert sorted(by_job) == sorted(jobs[lane])
        for job_id, types in by_job.items():
            assert types[0] == "JobRequested" and types[-1] == "JobSucceeded", (lane, job_id, types)
            assert set(types[1:-1]) == {"JobStarted"}, (lane, job_id, types)
        consumers |= {e.consumer for e in events if isinstance(e, JobSucceeded)}
        assert pending(redis_client, names, lane) == 0
    assert consumers == {"w1", "w2"}


def test_a_dead_consumers_job_in_a_bulk_lane_is_claimed_there(make_worker, redis_client, names):
    job_id = submit_to(redis_client, names, BULK_ACME)
    rescuer = make_worker("c2", claim_idle_ms=100, claim_interval_ms=10)
    stream = names.lane(0, BULK_ACME)
    redis_client.xreadgroup(names.workers_group, "c1", {stream: ">"}, count=1)  # c1 dies
    time.sleep(0.15)
    drain(rescuer)
    events = job_events(redis_client, names, BULK_ACME, job_id)
    assert event_types(events) == ["JobRequested", "JobStarted", "JobSucceeded"]
    assert events[-1].consumer == "c2"
    assert pending(redis_client, names, BULK_ACME) == 0
    assert redis_client.xlen(names.events(0)) == 0  # nothing went to the default lane


def test_a_bulk_lanes_dead_letter_is_redriven_into_its_lane(make_worker, redis_client, names):
    job_id = submit_to(redis_client, names, BULK_ACME)
    worker = make_worker("w", claim_idle_ms=100, claim_interval_ms=10, max_deliveries=3)
    stream = names.lane(0, BULK_ACME)
    (entry_id, _), *_ = redis_client.xrange(stream)
    redis_client.xreadgroup(names.workers_group, "ghost-1", {stream: ">"}, count=1)
    for ghost in ("ghost-2", "ghost-3"):
        redis_client.xclaim(stream, names.workers_group, ghost, 0, [entry_id])
    time.sleep(0.15)
    drain(worker)  # the fourth delivery goes over the limit
    failed = job_events(redis_client, names, BULK_ACME, job_id)[-1]
    assert isinstance(failed, JobFailed)
    assert failed.error_type == "DeliveryLimitExceededError"
    assert pending(redis_client, names, BULK_ACME) == 0
    (letter,) = deadletters.list_letters(redis_client, names, [0])
    assert (letter.job_id, letter.lane, letter.deliveries) == (job_id, BULK_ACME, 4)

    [(_, new_job)] = deadletters.redrive(redis_client, names, [0], [letter.ref], 3600)
    drain(worker)
    redriven = job_events(redis_client, names, BULK_ACME, new_job)
    assert event_types(redriven) == ["JobRequested", "JobStarted", "JobSucceeded"]
    assert (redriven[0].tenant, redriven[0].lane) == ("acme", BULK)
    assert redis_client.xlen(names.events(0)) == 0
    assert deadletters.list_letters(redis_client, names, [0]) == []


def test_a_letter_without_a_lane_is_redriven_into_the_default_lane(
    make_worker, redis_client, names
):
    fields = encode(request(SPAM, DEFAULT_LANE))
    letter = deadletters.dead_letter_fields("1-0", fields, 6, "x", datetime.now(UTC))
    del letter["dead_letter_lane"]  # as written before lanes
    redis_client.xadd(names.dead_letters(0), letter)
    (found,) = deadletters.list_letters(redis_client, names, [0])
    assert found.lane == DEFAULT_LANE
    [(_, new_job)] = deadletters.redrive(redis_client, names, [0], [found.ref], 3600)
    drain(make_worker())
    assert event_types(job_events(redis_client, names, DEFAULT_LANE, new_job)) == [
        "JobRequested",
        "JobStarted",
        "JobSucceeded",
    ]


def test_a_stopping_consumer_hands_back_every_lane(make_worker, redis_client, names):
    jobs = {
        lane: submit_many(
            redis_client, names, lane, [f"[[sleep_ms:300]] {lane.name} {i}" for i in range(2)]
        )
        for lane in (BULK_ACME, BULK_BETA)
    }
    leaving = make_worker("leaving", claim_idle_ms=60000, batch_max_size=4)
    stop = threading.Event()
    thread = threading.Thread(target=leaving.run, args=(stop,))
    thread.start()
    # It holds both jobs of both lanes (two each: a round's share) and works on the first.
    deadline = time.monotonic() + 5
    while sum(len(ids) for ids in leaving.held.by_stream().values()) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert set(leaving.held.by_stream()) == {names.lane(0, BULK_ACME), names.lane(0, BULK_BETA)}
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    taker = make_worker("taker", claim_idle_ms=60000, claim_interval_ms=10)
    drain(taker)
    done = {
        lane: [job_events(redis_client, names, lane, job)[-1] for job in ids]
        for lane, ids in jobs.items()
    }
    assert all(isinstance(e, JobSucceeded) for events in done.values() for e in events)
    assert done[BULK_ACME][0].consumer == "leaving"
    assert {e.consumer for e in [*done[BULK_ACME][1:], *done[BULK_BETA]]} == {"taker"}
    assert pending(redis_client, names, BULK_ACME) == pending(redis_client, names, BULK_BETA) == 0


def test_a_live_consumers_long_job_in_a_bulk_lane_is_not_claimed(make_worker, redis_client, names):
    # As test_consumer's test of the default lane: three idle windows long.
    job_id = submit_to(redis_client, names, BULK_ACME, "[[sleep_ms:1800]] " + SPAM)
    busy = make_worker("busy", claim_idle_ms=600, inference_timeout_ms=5000)
    other = make_worker("other", claim_idle_ms=600, claim_interval_ms=10)
    busy.held.start()
    thread = threading.Thread(target=busy.poll_once)
    thread.start()
    stream = names.lane(0, BULK_ACME)
    while not any(
        c["name"] == "busy" and c["pending"]
        for c in redis_client.xinfo_consumers(stream, names.workers_group)
    ):
        time.sleep(0.005)
    deadline = time.monotonic() + 2.2
    while time.monotonic() < deadline:  # other keeps looking for idle entries meanwhile
        other.poll_once()
    thread.join()
    busy.held.close()
    drain(other)
    events = job_events(redis_client, names, BULK_ACME, job_id)
    assert event_types(events) == ["JobRequested", "JobStarted", "JobSucceeded"]
    assert {e.consumer for e in events[1:]} == {"busy"}


def test_an_interactive_job_ends_a_wait_to_fill_a_bulk_round(
    make_worker, redis_client, names, monkeypatch
):
    submit_to(redis_client, names, BULK_ACME)
    worker = make_worker(batch_max_size=100, batch_max_wait_ms=5000)
    reads: list[int] = []
    first = threading.Event()
    read = group_module.read_streams

    def reading(*args, **kwargs):
        got, replies = read(*args, **kwargs)
        reads.append(sum(len(entries) for entries in got.values()))
        if reads[-1]:
            first.set()
        return got, replies

    monkeypatch.setattr(group_module, "read_streams", reading)
    began = time.monotonic()
    poll = threading.Thread(target=worker.poll_once)
    poll.start()
    assert first.wait(5)  # the bulk job, read; the round waits for more
    urgent = submit_to(redis_client, names, DEFAULT_LANE)
    poll.join(10)
    assert time.monotonic() - began < 2.5  # not the whole wait
    assert event_types(job_events(redis_client, names, DEFAULT_LANE, urgent))[-1] == (
        "JobSucceeded"
    )
    (bulk_outcome,) = outcomes(redis_client, names, BULK_ACME)
    (urgent_outcome,) = outcomes(redis_client, names, DEFAULT_LANE)
    assert urgent_outcome.occurred_at <= bulk_outcome.occurred_at  # its lane went first


def test_a_lane_whose_stream_went_away_does_not_stop_the_others(make_worker, redis_client, names):
    submit_to(redis_client, names, BULK_ACME)
    worker = make_worker()
    drain(worker)
    redis_client.delete(names.lane(0, BULK_ACME))  # by hand: its group goes with it
    with pytest.raises(redis.ResponseError, match="NOGROUP"):
        worker.poll_once()
    job_id = submit_to(redis_client, names, DEFAULT_LANE)
    again = submit_to(redis_client, names, BULK_ACME)
    drain(worker)
    assert [e.job_id for e in outcomes(redis_client, names, DEFAULT_LANE)] == [job_id]
    assert [e.job_id for e in outcomes(redis_client, names, BULK_ACME)] == [again]


def test_a_lane_that_appears_while_every_round_is_busy_waits_one_round(
    make_worker, redis_client, names
):
    submit_many(redis_client, names, BULK_ACME, (f"bulk {i}" for i in range(500)))
    worker = make_worker(batch_max_size=16, lanes_refresh_ms=60000)
    assert worker.poll_once() == 16
    newcomer = Lane(INTERACTIVE, "beta")
    job_id = submit_to(redis_client, names, newcomer)
    assert worker.poll_once() == 16  # this round's first read saw the set of lanes grow ...
    assert worker.poll_once() == 1  # ... so the next one found the lane, and served it first
    assert [e.job_id for e in outcomes(redis_client, names, newcomer)] == [job_id]
