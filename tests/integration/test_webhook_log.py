"""Webhook messages in Redis (eventlog.webhooks): scheduled once, leased to one notifier at a
time, the outcome written only by the lease's holder, and a dead letter redriven once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from domain.events import WebhookAbandoned, WebhookAttempted
from domain.ids import new_job_id
from domain.webhooks import COMPLETED, message_id
from eventlog.connection import connect_async
from eventlog.lanes import DEFAULT_LANE
from eventlog.webhooks import ABANDONED, RETRY, AsyncWebhookLog, Message, Outcome, WebhookLog


def message(job_id: str) -> Message:
    return Message(
        webhook_id=message_id(job_id, COMPLETED), job_id=job_id, trigger=COMPLETED,
        url="https://example.com/h", tenant=DEFAULT_LANE.tenant, partition=0,
        lane=DEFAULT_LANE.name,
        body='{"job_id":"x"}', event_ms=1,
    )  # fmt: skip


def attempted(m: Message, attempt: int) -> WebhookAttempted:
    return WebhookAttempted(
        job_id=m.job_id, occurred_at=datetime.now(UTC), webhook_id=m.webhook_id,
        trigger=m.trigger, url=m.url, attempt=attempt, status_code=500, error="",
        duration_ms=1.0,
    )  # fmt: skip


def test_messages_are_leased_once_and_only_the_holder_writes(
    redis_url, redis_cluster, redis_client, names
):
    job_id = new_job_id(0)
    m = message(job_id)
    blocking = WebhookLog(redis_client, names, 0, 3600)
    assert blocking.schedule([(m, False)], due_ms=1000) == [True]
    assert blocking.schedule([(m, False)], due_ms=1000) == [False]  # read again: nothing new

    async def work():
        client = connect_async(redis_url, redis_cluster)
        try:
            log = AsyncWebhookLog(client, names, 3600)
            first = await log.lease(0, now_ms=2000, lease_ms=500, count=10)
            during = await log.lease(0, now_ms=2400, lease_ms=500, count=10)
            # The first notifier died: its lease ends, another takes the message.
            second = await log.lease(0, now_ms=2600, lease_ms=500, count=10)
            retry = Outcome(RETRY, 1, (attempted(m, 1),), next_due_ms=5000)
            stale = await log.outcome(m, first.lease_ms, retry)
            held = await log.outcome(m, second.lease_ms, retry)
            not_yet = await log.lease(0, now_ms=4999, lease_ms=500, count=10)
            third = await log.lease(0, now_ms=5000, lease_ms=500, count=10)
            abandon = Outcome(
                ABANDONED, 2, (attempted(m, 2), WebhookAbandoned(
                    job_id=job_id, occurred_at=datetime.now(UTC), webhook_id=m.webhook_id,
                    trigger=m.trigger, url=m.url, attempts=2, reason="gone",
                )), letter={**m.fields(), "reason": "gone"},
            )  # fmt: skip
            done = await log.outcome(m, third.lease_ms, abandon)
            after = await log.lease(0, now_ms=10**13, lease_ms=500, count=10)
            return first, during, second, stale, held, not_yet, third, done, after
        finally:
            await client.aclose()

    first, during, second, stale, held, not_yet, third, done, after = asyncio.run(work())
    assert [x.webhook_id for x in first.messages] == [m.webhook_id]
    assert first.messages[0].body == m.body and during.messages == []
    assert [x.webhook_id for x in second.messages] == [m.webhook_id]
    assert (stale, held, done) == (False, True, True)
    assert not_yet.messages == [] and third.messages[0].attempts == 1
    assert after.messages == []
    lane = [f["type"] for _, f in redis_client.xrange(names.events(0))]
    assert lane == ["WebhookAttempted", "WebhookAttempted", "WebhookAbandoned"]
    ((ref, letter),) = blocking.letters()
    assert letter["webhook_id"] == m.webhook_id and letter["body"] == m.body
    # Redriven once: due again with its attempts from zero, the letter gone.
    entry_id = ref.split("/")[1]
    assert blocking.redrive(entry_id, now_ms=20_000) is True
    assert blocking.redrive(entry_id, now_ms=20_000) is False
    assert blocking.letters() == []
    assert redis_client.zscore(names.webhooks_due(0), m.webhook_id) == 20_000
    fields = redis_client.hgetall(names.webhook(0, m.webhook_id))
    assert (fields["attempts"], fields["state"]) == ("0", "pending")


def test_a_batch_watched_for_its_webhook_keeps_its_filter_and_an_older_record_reads_completed(
    redis_url, redis_cluster, redis_client, names
):
    from eventlog import batches

    async def watch(*watched: tuple[str, str]) -> None:
        client = connect_async(redis_url, redis_cluster)
        try:
            # Something read first, as any process has before it watches a batch: redis-py's
            # cluster client made and used for a transaction at once fails on its event loop.
            await batches.read(client, names, watched[0][0])
            for batch_id, triggers in watched:
                await batches.add_jobs(client, names, batch_id, "acme", datetime.now(UTC), 2, 3600)
                await batches.watch(
                    client, names, batch_id, "acme", "https://e.com/h", 3600, triggers
                )
        finally:
            await client.aclose()

    asyncio.run(watch(("b-both", "started,completed"), ("b-old", "")))
    record = batches.read_blocking(redis_client, names, "b-both")
    assert record is not None
    assert (record.webhook, record.webhook_filter) == ("https://e.com/h", "started,completed")
    assert "b-both" in redis_client.zrange(names.webhook_batches, 0, -1)
    # A record written before the filter was kept: its webhook is sent on completion only.
    redis_client.hdel(names.batch("b-old"), batches.WEBHOOK_FILTER)
    old = batches.read_blocking(redis_client, names, "b-old")
    assert old is not None and old.webhook_filter == ""
