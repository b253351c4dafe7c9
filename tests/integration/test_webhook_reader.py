"""The notifier's reading of the log with real Redis: a job's entries read out of order (by
two notifiers of the group, or a late claim) still schedule its message, with the body of
every event up to its trigger; a job without a webhook schedules nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from domain.events import JobRequested, JobStarted, JobSucceeded, encode
from domain.ids import new_job_id
from domain.webhooks import message_id
from eventlog.lanes import DEFAULT_LANE
from eventlog.submission import Retention, submit
from notifier.reader import PartitionReader
from notifier.settings import NotifierSettings

T0 = datetime.now(UTC)
RETENTION = Retention(job_index_ttl_s=3600, idempotency_ttl_s=60)


def job(redis_client, names, webhook: str, filter_: str = "completed") -> tuple[str, list]:
    job_id = new_job_id(0)
    request = JobRequested(
        job_id=job_id, occurred_at=T0, text="hi", model_version="m", webhook=webhook,
        webhook_events_filter=filter_,
    )  # fmt: skip
    submit(redis_client, names, request, RETENTION)
    stream = names.events(0)
    started = JobStarted(job_id=job_id, occurred_at=T0 + timedelta(seconds=1), consumer="c",
                         attempt=1)  # fmt: skip
    redis_client.xadd(stream, encode(started))
    redis_client.xadd(stream, encode(JobSucceeded(
        job_id=job_id, occurred_at=T0 + timedelta(seconds=2), consumer="c", attempt=1,
        label="spam", score=0.9, probabilities={"spam": 0.9, "ham": 0.1}, model_version="m",
        inference_ms=1.0,
    )))  # fmt: skip
    entries = [e for e in redis_client.xrange(stream) if e[1]["job_id"] == job_id]
    return job_id, entries


def test_entries_read_out_of_order_still_schedule_the_message(redis_url, redis_client, names):
    settings = NotifierSettings(redis_url=redis_url, stream_prefix=names.prefix)
    first = PartitionReader(settings, redis_client, 0)
    second = PartitionReader(
        NotifierSettings(redis_url=redis_url, stream_prefix=names.prefix, notifier_name="b"),
        redis_client,
        0,
    )
    first.group.refresh(force=True)
    second.group.refresh(force=True)
    lane = DEFAULT_LANE
    job_id, (requested, started, succeeded) = job(redis_client, names, "https://e.com/h",
                                                  "started,completed")  # fmt: skip
    # The second notifier reads the job's end before the first has read its request.
    second._handle(second.group.lane(lane), lane, [succeeded])
    first._handle(first.group.lane(lane), lane, [requested])
    second._handle(second.group.lane(lane), lane, [started])
    due = names.webhooks_due(0)
    completed = redis_client.hgetall(names.webhook(0, message_id(job_id, "completed")))
    started_message = redis_client.hgetall(names.webhook(0, message_id(job_id, "started")))
    assert redis_client.zscore(due, message_id(job_id, "completed")) is not None
    assert redis_client.zscore(due, message_id(job_id, "started")) is not None
    body = json.loads(completed["body"])
    # Folded from every event up to the end, though the start was read after it.
    assert body["status"] == "succeeded" and body["result"]["label"] == "spam"
    assert body["created_at"] and body["finished_at"]
    assert json.loads(started_message["body"])["status"] == "started"
    assert completed["url"] == "https://e.com/h" and completed["tenant"] == "default"


def test_a_job_without_a_webhook_schedules_nothing_and_keeps_nothing(
    redis_url, redis_client, names
):
    notifier = PartitionReader(
        NotifierSettings(redis_url=redis_url, stream_prefix=names.prefix), redis_client, 0
    )
    notifier.group.refresh(force=True)
    job_id, entries = job(redis_client, names, "")
    notifier._handle(notifier.group.lane(DEFAULT_LANE), DEFAULT_LANE, list(reversed(entries)))
    assert redis_client.zcard(names.webhooks_due(0)) == 0
    assert not redis_client.exists(names.webhook_job(job_id))


def test_the_same_trigger_read_twice_schedules_one_message(redis_url, redis_client, names):
    notifier = PartitionReader(
        NotifierSettings(redis_url=redis_url, stream_prefix=names.prefix), redis_client, 0
    )
    notifier.group.refresh(force=True)
    job_id, entries = job(redis_client, names, "https://e.com/h")
    group = notifier.group.lane(DEFAULT_LANE)
    notifier._handle(group, DEFAULT_LANE, entries)
    key = names.webhook(0, message_id(job_id, "completed"))
    redis_client.hset(key, "attempts", "3")  # as if sent meanwhile
    notifier._handle(group, DEFAULT_LANE, entries[-1:])
    assert redis_client.hget(key, "attempts") == "3"
    assert redis_client.zcard(names.webhooks_due(0)) == 1
    assert not redis_client.exists(names.webhook_job(job_id))  # gone with its last message
