"""BATCH_SUBMIT_SCRIPT against a real Redis: order, keys, duplicates, TTLs, one command."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from api.batchstore import BatchLogClient
from domain.errors import DependencyUnavailableError
from domain.events import JobRequested, encode
from domain.ids import new_job_id
from infra.batchlog import BATCH_SUBMIT_SCRIPT, BatchEntry, batch_submit_args, parse_batch
from infra.eventlog import Submission
from infra.names import Names
from tests.support import MODEL_VERSION, log_events, submit

INDEX_TTL_S = 3600
KEY_TTL_S = 600


def entry(text: str, key: str | None = None, fingerprint: str = "") -> BatchEntry:
    event = JobRequested(
        job_id=new_job_id(),
        occurred_at=datetime.now(UTC),
        text=text,
        model_version=MODEL_VERSION,
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    return BatchEntry(event, key, fingerprint or (f"fp-{text}" if key else ""))


def run(client: redis.Redis, names: Names, entries: list[BatchEntry]) -> list[Submission]:
    keys, argv = batch_submit_args(names, entries, INDEX_TTL_S, KEY_TTL_S)
    return parse_batch(client.register_script(BATCH_SUBMIT_SCRIPT)(keys=keys, args=argv))


def test_items_are_appended_in_order_with_their_job_index(redis_client, names):
    entries = [entry(f"text {i}", key=f"k-{i}" if i % 2 else None) for i in range(5)]
    submissions = run(redis_client, names, entries)
    assert submissions == [Submission(e.event.job_id, created=True) for e in entries]
    logged = log_events(redis_client, names)
    assert [event for _, event in logged] == [e.event for e in entries]
    for entry_id, event in logged:
        assert redis_client.get(names.job(event.job_id)) == entry_id
    # The stream holds exactly what encode wrote, in its field order.
    raw = redis_client.xrange(names.events)
    assert [fields for _, fields in raw] == [encode(e.event) for e in entries]


def test_a_known_key_replays_its_job_and_appends_nothing(redis_client, names):
    first = [entry("a", "key-a"), entry("b", "key-b")]
    run(redis_client, names, first)
    again = [entry("a", "key-a"), entry("c"), entry("b", "key-b", fingerprint="other")]
    submissions = run(redis_client, names, again)
    assert submissions[0] == Submission(first[0].event.job_id, created=False, fingerprint="fp-a")
    assert submissions[1] == Submission(again[1].event.job_id, created=True)
    # The stored fingerprint comes back: the caller, not the script, tells a reuse from a replay.
    assert submissions[2] == Submission(first[1].event.job_id, created=False, fingerprint="fp-b")
    job_ids = [event.job_id for _, event in log_events(redis_client, names)]
    assert job_ids == [first[0].event.job_id, first[1].event.job_id, again[1].event.job_id]


def test_a_key_repeated_in_one_batch_names_the_job_of_its_first_item(redis_client, names):
    entries = [entry("same", "dup"), entry("same", "dup"), entry("different", "dup", "fp-x")]
    submissions = run(redis_client, names, entries)
    original = entries[0].event.job_id
    assert submissions[0] == Submission(original, created=True)
    assert submissions[1] == Submission(original, created=False, fingerprint="fp-same")
    assert submissions[2] == Submission(original, created=False, fingerprint="fp-same")
    assert [event.job_id for _, event in log_events(redis_client, names)] == [original]


def test_keys_are_shared_with_the_single_submission(redis_client, names):
    job_id = submit(redis_client, names, "once", idempotency_key="shared")
    [submission] = run(redis_client, names, [entry("once", "shared", "fp")])
    assert submission == Submission(job_id, created=False, fingerprint="fp")


def test_index_and_key_expire_and_items_without_a_key_store_none(redis_client, names):
    keyed, plain = entry("keyed", "ttl-key"), entry("plain")
    run(redis_client, names, [keyed, plain])
    for item in (keyed, plain):
        assert 0 < redis_client.ttl(names.job(item.event.job_id)) <= INDEX_TTL_S
    assert 0 < redis_client.ttl(names.idempotency("ttl-key")) <= KEY_TTL_S
    assert redis_client.hgetall(names.idempotency("ttl-key")) == {
        "job_id": keyed.event.job_id,
        "fingerprint": "fp-keyed",
    }
    stored = set(redis_client.scan_iter(match=f"{names.prefix}:idempotency:*"))
    assert stored == {names.idempotency("ttl-key")}


def test_a_thousand_items_take_one_command(redis_url, redis_client, names):
    client = CountingRedis.from_url(redis_url, decode_responses=True)
    entries = [entry(f"item {i}", key=f"many-{i}" if i % 3 == 0 else None) for i in range(1000)]

    async def submit_all() -> list[Submission]:
        log = BatchLogClient(client, names, timeout_s=10)
        await client.script_load(BATCH_SUBMIT_SCRIPT)  # as any earlier request would have
        client.commands.clear()
        try:
            return await log.submit(entries, INDEX_TTL_S, KEY_TTL_S)
        finally:
            await client.aclose()

    submissions = asyncio.run(submit_all())
    assert client.commands == ["EVALSHA"]
    assert [s.job_id for s in submissions] == [e.event.job_id for e in entries]
    assert all(s.created for s in submissions)
    assert redis_client.xlen(names.events) == 1000


def test_an_empty_batch_sends_nothing(names):
    client = CountingRedis.from_url("redis://127.0.0.1:9/0", decode_responses=True)
    assert asyncio.run(BatchLogClient(client, names, timeout_s=1).submit([], 60, 60)) == []
    assert client.commands == []
    with pytest.raises(ValueError, match="at least one"):
        batch_submit_args(names, [], 60, 60)


def test_an_unreachable_redis_is_dependency_unavailable(names):
    async def submit_one() -> None:
        client = aioredis.Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=1)
        try:
            await BatchLogClient(client, names, timeout_s=1).submit([entry("lost")], 60, 60)
        finally:
            await client.aclose()

    with pytest.raises(DependencyUnavailableError, match="redis unavailable"):
        asyncio.run(submit_one())


class CountingRedis(aioredis.Redis):
    """Records the name of every command it sends."""

    commands: list[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = []

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.commands.append(str(args[0]))
        return await super().execute_command(*args, **options)
