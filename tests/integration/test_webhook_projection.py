"""Webhook delivery events in the log: the projector archives them and leaves the job rows as
the fold of the job's own events, live and in a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete

from domain.events import WebhookAbandoned, WebhookAttempted, WebhookDelivered, encode
from domain.ids import partition_of
from domain.webhooks import COMPLETED, message_id
from readmodel.tables import jobs, projector_checkpoints
from tests.integration.rebuild_support import archived
from tests.integration.test_projector import expected, load, rows


def deliveries(redis_client, names, job_id: str, late_job: str) -> None:
    stream = names.events(partition_of(job_id))
    common = {
        "job_id": job_id, "occurred_at": datetime.now(UTC), "trigger": COMPLETED,
        "webhook_id": message_id(job_id, COMPLETED), "url": "https://example.com/h",
    }  # fmt: skip
    redis_client.xadd(stream, encode(WebhookAttempted(
        **common, attempt=1, status_code=500, error="", duration_ms=3.0,
        next_attempt_at=datetime.now(UTC),
    )))  # fmt: skip
    redis_client.xadd(stream, encode(WebhookAttempted(
        **common, attempt=2, status_code=204, error="", duration_ms=3.0,
    )))  # fmt: skip
    redis_client.xadd(stream, encode(WebhookDelivered(**common, attempt=2, status_code=204)))
    # A job whose row is not there (no request in this log): a delivery makes none.
    orphan = {**common, "job_id": late_job, "webhook_id": message_id(late_job, COMPLETED)}
    redis_client.xadd(stream, encode(WebhookAbandoned(**orphan, attempts=3, reason="gone")))


def test_deliveries_are_archived_and_change_no_row(make_projector, redis_client, names, engine):
    job_ids = load(redis_client, names, 9)
    make_projector().catch_up()
    before = rows(engine)
    orphan = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
    for job_id in job_ids[:4]:  # some finished (i % 3), some still queued
        deliveries(redis_client, names, job_id, orphan)
    make_projector(read_count=5).catch_up()
    assert rows(engine) == before == expected(redis_client, names)
    assert orphan not in rows(engine)
    kinds = [fields["type"] for _, fields in archived(engine)]
    assert kinds.count("WebhookAttempted") == 8 and kinds.count("WebhookDelivered") == 4
    assert kinds.count("WebhookAbandoned") == 4

    with engine.begin() as conn:  # a rebuild from the log gives the same rows
        conn.execute(delete(jobs))
        conn.execute(delete(projector_checkpoints))
    make_projector(read_count=3).catch_up()
    assert rows(engine) == before
