"""Accepting batches against a real Redis: order, keys, duplicates, TTLs, round trips, and the
spread over partitions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from api.errors import DependencyUnavailableError
from api.logclient import LogClient
from domain.events import JobRequested, encode
from domain.ids import new_job_id
from eventlog import scripts
from eventlog.names import Names
from eventlog.placement import Placement
from eventlog.submission import BatchEntry, Retention, Submission, Submitter, batch_submit_args
from tests.support import MODEL_VERSION, async_client, log_events, one_server

INDEX_TTL_S = 3600
KEY_TTL_S = 600
RETENTION = Retention(job_index_ttl_s=INDEX_TTL_S, idempotency_ttl_s=KEY_TTL_S)


def entry(
    text: str, key: str | None = None, fingerprint: str = "", job_id: str | None = None
) -> BatchEntry:
    event = JobRequested(
        job_id=job_id or new_job_id(),
        occurred_at=datetime.now(UTC),
        text=text,
        model_version=MODEL_VERSION,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    return BatchEntry(event, key, fingerprint or (f"fp-{text}" if key else ""))


def run(
    redis_url: str, names: Names, entries: list[BatchEntry], partitions: int = 1
) -> list[Submission]:
    async def submit_all() -> list[Submission]:
        client = async_client(redis_url)
        try:
            return await Submitter(client, names, RETENTION, partitions).submit_batch(entries)
        finally:
            await client.aclose()

    return asyncio.run(submit_all())


def submit_one(redis_url: str, names: Names, item: BatchEntry, partitions: int = 1) -> Submission:
    async def submit() -> Submission:
        client = async_client(redis_url)
        try:
            submitter = Submitter(client, names, RETENTION, partitions)
            return await submitter.submit(item.event, item.idempotency_key, item.fingerprint)
        finally:
            await client.aclose()

    return asyncio.run(submit())


def test_items_are_appended_in_order_with_their_job_index(redis_url, redis_client, names):
    entries = [entry(f"text {i}", key=f"k-{i}" if i % 2 else None) for i in range(5)]
    submissions = run(redis_url, names, entries)
    assert submissions == [Submission(e.event.job_id, created=True) for e in entries]
    logged = log_events(redis_client, names)
    assert [event for _, event in logged] == [e.event for e in entries]
    for entry_id, event in logged:
        assert redis_client.get(names.job(event.job_id)) == entry_id
    # The stream holds exactly what encode wrote, in its field order.
    raw = redis_client.xrange(names.events(0))
    assert [fields for _, fields in raw] == [encode(e.event) for e in entries]


def test_a_known_key_replays_its_job_and_appends_nothing(redis_url, redis_client, names):
    first = [entry("a", "key-a"), entry("b", "key-b")]
    run(redis_url, names, first)
    again = [entry("a", "key-a"), entry("c"), entry("b", "key-b", fingerprint="other")]
    submissions = run(redis_url, names, again)
    assert submissions[0] == Submission(first[0].event.job_id, created=False, fingerprint="fp-a")
    assert submissions[1] == Submission(again[1].event.job_id, created=True)
    # The stored fingerprint comes back: the caller tells a reuse from a replay.
    assert submissions[2] == Submission(first[1].event.job_id, created=False, fingerprint="fp-b")
    job_ids = [event.job_id for _, event in log_events(redis_client, names)]
    assert job_ids == [first[0].event.job_id, first[1].event.job_id, again[1].event.job_id]


def test_a_key_repeated_in_one_batch_names_the_job_of_its_first_item(
    redis_url, redis_client, names
):
    entries = [entry("same", "dup"), entry("same", "dup"), entry("different", "dup", "fp-x")]
    submissions = run(redis_url, names, entries)
    original = entries[0].event.job_id
    assert submissions[0] == Submission(original, created=True)
    assert submissions[1] == Submission(original, created=False, fingerprint="fp-same")
    assert submissions[2] == Submission(original, created=False, fingerprint="fp-same")
    assert [event.job_id for _, event in log_events(redis_client, names)] == [original]


def test_keys_are_shared_with_the_single_submission(redis_url, names):
    first = submit_one(redis_url, names, entry("once", "shared", "fp"))
    [submission] = run(redis_url, names, [entry("once", "shared", "fp")])
    assert submission == Submission(first.job_id, created=False, fingerprint="fp")


def test_a_key_bound_by_a_request_that_died_before_appending_appends_its_job_once(
    redis_url, redis_client, names
):
    # The first request bound the key to its job and died before the append.
    orphan = new_job_id(3)
    redis_client.hset(
        names.idempotency("orphaned"), mapping={"job_id": orphan, "fingerprint": "fp"}
    )
    retry = entry("late", "orphaned", "fp")
    assert submit_one(redis_url, names, retry, partitions=4) == Submission(orphan, False, "fp")
    [(_, appended)] = log_events(redis_client, names, partition=3)
    assert appended.job_id == orphan and appended.text == "late"
    # Every later retry, single or in a batch, finds the job on the log and appends nothing.
    submit_one(redis_url, names, retry, partitions=4)
    run(redis_url, names, [entry("late", "orphaned", "fp")], partitions=4)
    assert len(log_events(redis_client, names, partition=3)) == 1


def test_a_key_finds_its_job_after_the_partitions_were_raised(redis_url, redis_client, names):
    first = submit_one(redis_url, names, entry("kept", "raised", "fp", job_id=new_job_id(0)))
    for partitions in (2, 8):
        again = entry("kept", "raised", "fp", job_id=new_job_id(partitions - 1))
        assert submit_one(redis_url, names, again, partitions) == Submission(
            first.job_id, False, "fp"
        )
    assert sum(len(log_events(redis_client, names, p)) for p in range(8)) == 1


def test_index_and_key_expire_and_items_without_a_key_store_none(redis_url, redis_client, names):
    keyed, plain = entry("keyed", "ttl-key"), entry("plain")
    run(redis_url, names, [keyed, plain])
    for item in (keyed, plain):
        assert 0 < redis_client.ttl(names.job(item.event.job_id)) <= INDEX_TTL_S
    assert 0 < redis_client.ttl(names.idempotency("ttl-key")) <= KEY_TTL_S
    assert redis_client.hgetall(names.idempotency("ttl-key")) == {
        "job_id": keyed.event.job_id,
        "fingerprint": "fp-keyed",
    }
    stored = set(redis_client.scan_iter(match=f"{names.prefix}:idempotency:*"))
    assert stored == {names.idempotency("ttl-key")}


def test_a_keyed_jobs_index_outlives_its_key(redis_url, redis_client, names):
    retention = Retention(job_index_ttl_s=60, idempotency_ttl_s=KEY_TTL_S)
    keyed = entry("keyed", "long-key")

    async def submit() -> None:
        client = async_client(redis_url)
        try:
            await Submitter(client, names, retention, 1).submit_batch([keyed])
        finally:
            await client.aclose()

    asyncio.run(submit())
    assert redis_client.ttl(names.job(keyed.event.job_id)) > 60


def counted_batch(
    redis_url: str, names: Names, entries: list[BatchEntry], partitions: int = 1
) -> tuple[list[str], list[Submission]]:
    """The commands (and pipelines) one batch submission sends, and what it did."""
    client = CountingRedis.from_url(redis_url, decode_responses=True)

    async def submit_all() -> list[Submission]:
        log = LogClient(client, names, RETENTION, timeout_s=10, partitions=partitions)
        await client.script_load(scripts.BATCH_SUBMIT)  # as any earlier request would have
        client.commands.clear()
        try:
            return await log.submit_batch(entries)
        finally:
            await client.aclose()

    submissions = asyncio.run(submit_all())
    return client.commands, submissions


@one_server("counts one server's round trips")
def test_a_batch_without_keys_takes_one_command_per_partition(redis_url, redis_client, names):
    placement = Placement(4)
    entries = [
        entry(f"item {i}", job_id=job_id) for i, job_id in enumerate(placement.job_ids(1000))
    ]
    commands, submissions = counted_batch(redis_url, names, entries, partitions=4)
    assert commands == ["EVALSHA"] * 4
    assert [s.job_id for s in submissions] == [e.event.job_id for e in entries]
    assert all(s.created for s in submissions)
    lengths = [redis_client.xlen(names.events(p)) for p in range(4)]
    assert sum(lengths) == 1000 and min(lengths) >= 200, lengths


@one_server("counts one server's round trips")
def test_keys_are_bound_in_one_round_trip(redis_url, names):
    entries = [entry(f"item {i}", key=f"many-{i}" if i % 3 == 0 else None) for i in range(1000)]
    commands, submissions = counted_batch(redis_url, names, entries)
    assert commands == ["PIPELINE", "EVALSHA"]
    assert all(s.created for s in submissions)


def test_an_empty_batch_sends_nothing(names):
    client = CountingRedis.from_url("redis://127.0.0.1:9/0", decode_responses=True)
    assert asyncio.run(LogClient(client, names, RETENTION, timeout_s=1).submit_batch([])) == []
    assert client.commands == []
    with pytest.raises(ValueError, match="at least one"):
        batch_submit_args(names, 0, [], INDEX_TTL_S)


def test_an_unreachable_redis_is_dependency_unavailable(names):
    async def submit_one() -> None:
        client = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
        try:
            await LogClient(client, names, RETENTION, timeout_s=1).submit_batch([entry("lost")])
        finally:
            await client.aclose()

    with pytest.raises(DependencyUnavailableError, match="redis unavailable"):
        asyncio.run(submit_one())


class CountingRedis(aioredis.Redis):
    """Records the name of every command it sends, and PIPELINE for each pipeline executed."""

    commands: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute, commands = pipe.execute, self.commands

        async def counted(raise_on_error: bool = True) -> Any:
            commands.append("PIPELINE")
            return await execute(raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe


def test_an_append_sent_again_after_a_lost_reply_is_still_the_requests_own(
    redis_url, redis_client, names
):
    # redis-py sends a command again on a new connection when the first one dropped before the
    # reply: the script then finds its job on the log, and the request must still get its 202.
    single = entry("once, without a key")
    assert submit_one(redis_url, names, single) == Submission(single.event.job_id, created=True)
    assert submit_one(redis_url, names, single) == Submission(single.event.job_id, created=True)
    batch = [entry(f"batch {i}") for i in range(3)]
    for _ in range(2):
        submissions = run(redis_url, names, batch)
        assert submissions == [Submission(e.event.job_id, created=True) for e in batch]
    assert len(log_events(redis_client, names)) == 4
