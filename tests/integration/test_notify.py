"""The projector announces the jobs each batch made terminal, after the batch committed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from sqlalchemy import select

from domain.events import JobStarted, encode
from eventlog.connection import connect
from eventlog.names import Names
from readmodel import announcement
from readmodel.rows import from_json, to_state
from readmodel.tables import jobs
from tests.support import append_failure, submit, succeeded


def now() -> datetime:
    return datetime.now(UTC)


def start(client: redis.Redis, names: Names, job_id: str) -> None:
    started = JobStarted(job_id=job_id, occurred_at=now(), consumer="c", attempt=1)
    client.xadd(names.events(0), encode(started))


def succeed(client: redis.Redis, names: Names, job_id: str) -> None:
    client.xadd(names.events(0), encode(succeeded(job_id)))


def statuses(engine) -> dict[str, str]:
    """Job statuses as a separate connection sees them: committed data only."""
    with engine.connect() as conn:
        return {str(r.job_id): r.status for r in conn.execute(select(jobs.c.job_id, jobs.c.status))}


@pytest.fixture
def subscriber(redis_url: str, redis_cluster: bool, names: Names) -> Iterator[Any]:
    client = connect(redis_url, redis_cluster)
    pubsub = client.pubsub()
    pubsub.subscribe(names.terminal)
    # Confirmed before anything is published, so nothing is missed.
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    yield pubsub
    pubsub.close()
    client.close()


def received(pubsub: redis.client.PubSub) -> list[str]:
    """The messages published so far (PUBLISH returns once they are on their way)."""
    messages = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        messages.append(message["data"])
    return messages


@pytest.fixture
def publications(redis_client: redis.Redis, engine, monkeypatch) -> list[dict[str, str]]:
    """For each PUBLISH the projector sends, the statuses of the jobs it names at that moment."""
    seen: list[dict[str, str]] = []
    publish = redis_client.publish

    def spy(channel: str, message: str) -> int:
        committed = statuses(engine)
        seen.append(
            {job_id: committed.get(job_id, "absent") for job_id in announcement.decode(message)}
        )
        return publish(channel, message)

    monkeypatch.setattr(redis_client, "publish", spy)
    return seen


def test_a_batch_announces_its_terminal_jobs_once_after_commit(
    make_projector, redis_client, names, engine, subscriber, publications
):
    done, failed, running = (submit(redis_client, names, "t") for _ in range(3))
    for job_id in (done, failed, running):
        start(redis_client, names, job_id)
    succeed(redis_client, names, done)
    append_failure(redis_client, names, failed)
    succeed(redis_client, names, done)  # a duplicate outcome: still one id

    make_projector(read_count=500).catch_up()

    (message,) = received(subscriber)
    announced = announcement.decode(message)
    assert list(announced) == [done, failed]
    assert publications == [{done: "succeeded", failed: "failed"}]
    # Each with its row as committed: what a read of the job would return.
    with engine.connect() as conn:
        committed = {str(r.job_id): to_state(r._mapping) for r in conn.execute(select(jobs))}
    for job_id, row in announced.items():
        assert row is not None
        assert to_state(from_json(row)) == committed[job_id]


def test_each_batch_announces_what_it_finished(
    make_projector, redis_client, names, subscriber, publications
):
    first, second = submit(redis_client, names, "a"), submit(redis_client, names, "b")
    succeed(redis_client, names, first)
    succeed(redis_client, names, second)

    make_projector(read_count=3).catch_up()  # [req, req, first done] [second done]

    assert [list(announcement.decode(m)) for m in received(subscriber)] == [[first], [second]]
    assert publications == [{first: "succeeded"}, {second: "succeeded"}]


def test_a_large_batch_announces_its_jobs_without_rows(
    make_projector, redis_client, names, subscriber
):
    ids = [submit(redis_client, names, f"t{i}") for i in range(announcement.ROWS_UP_TO + 1)]
    for job_id in ids:
        succeed(redis_client, names, job_id)
    make_projector(read_count=500).catch_up()
    (message,) = received(subscriber)
    assert announcement.decode(message) == dict.fromkeys(ids)


def test_batches_without_terminal_events_announce_nothing(
    make_projector, redis_client, names, subscriber, publications
):
    start(redis_client, names, submit(redis_client, names, "t"))
    make_projector().catch_up()
    assert publications == []
    assert received(subscriber) == []


def test_a_failed_announcement_does_not_stop_projecting(
    make_projector, redis_client, names, engine, monkeypatch, caplog
):
    def broken(channel: str, message: str) -> int:
        raise redis.ConnectionError("no route to host")

    monkeypatch.setattr(redis_client, "publish", broken)
    job_id = submit(redis_client, names, "t")
    succeed(redis_client, names, job_id)

    with caplog.at_level(logging.WARNING, logger="projector.notify"):
        make_projector().catch_up()

    assert statuses(engine) == {job_id: "succeeded"}
    assert "could not announce 1 terminal jobs" in caplog.text
