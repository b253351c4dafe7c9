"""A batch's webhook (POST /v1/inference/batch with `webhook`, POST /v1/batches?webhook=): sent
once every job of the batch is terminal (`completed`) and, when its filter names `started`, once
a job of it has begun; with the batch as GET /v1/batches/{batch_id} answers it then.

A batch spans partitions, so no one reader sees all of its jobs end. Instead the notifiers
watch the batches that asked for a webhook (eventlog.batches.watch): each looks at a due one
every WEBHOOK_BATCH_POLL_MS (leased as messages are, so notifiers share the work), reads its
summary from the projection and its record (readmodel.batches.summarize, as the API does) and
schedules each message that is due (`started` once a job is past queued, `completed` once the
batch has completed or been cancelled; scheduling one twice schedules it once) in partition 0,
where it is
sent, retried and dead-lettered as a job's. Its attempts are events of partition 0's default
lane, with the batch's id as their job id.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from datetime import UTC, datetime

import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.webhooks import COMPLETED, DEFAULT_FILTER, STARTED, message_id, parse_filter
from eventlog import batches as records
from eventlog.connection import AsyncClient
from eventlog.lanes import DEFAULT_LANE
from eventlog.webhooks import AsyncWebhookLog, Message
from notifier.settings import NotifierSettings
from readmodel import batches as sql

log = logging.getLogger(__name__)

# Batches looked at per round.
ROUND = 100


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render(batch_id: str, summary: sql.Summary) -> str:
    """The batch's body, as api.batches.BatchBody renders it."""
    document = {
        "batch_id": batch_id,
        "status": summary.status,
        "counts": summary.counts,
        "created_at": _iso(summary.created_at),
        "finished_at": _iso(summary.finished_at),
    }
    return json.dumps(document, separators=(",", ":"))


class BatchWatcher:
    def __init__(
        self,
        settings: NotifierSettings,
        client: AsyncClient,
        webhooks: AsyncWebhookLog,
        engine: AsyncEngine,
    ) -> None:
        self._settings = settings
        self._redis = client
        self._webhooks = webhooks
        self._engine = engine

    async def run(self, stop: threading.Event) -> None:
        poll_s = self._settings.webhook_batch_poll_ms / 1000
        while not stop.is_set():
            try:
                await self.look_once()
            except (redis.RedisError, SQLAlchemyError) as exc:
                log.warning("batch webhooks: a dependency failed", extra={"error": str(exc)})
            await asyncio.sleep(poll_s)

    async def look_once(self) -> int:
        """Look at the batches whose turn it is; how many completed (their message due)."""
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        again_ms = self._settings.webhook_batch_poll_ms
        done = 0
        for batch_id in await self._webhooks.watched(now_ms, again_ms, ROUND):
            if await self._look(batch_id, now_ms):
                done += 1
        return done

    async def _look(self, batch_id: str, now_ms: int) -> bool:
        names = self._settings.names
        record = await records.read(self._redis, names, batch_id)
        if record is None or not record.webhook:  # expired, or not asked for
            await self._webhooks.unwatch(batch_id)
            return False
        cancel_requested = await records.cancel_requested(self._redis, names, batch_id)
        query, params = sql.summary_query(record.tenant, batch_id)
        async with self._engine.connect() as conn:
            rows = (await conn.exec_driver_sql(query, tuple(params))).mappings().all()
        summary = sql.summarize(record, sql.projected([dict(r) for r in rows]), cancel_requested)
        if summary is None:
            return False
        triggers = parse_filter(record.webhook_filter) if record.webhook_filter else DEFAULT_FILTER
        begun = summary.counts["total"] > summary.counts.get("queued", 0)
        if STARTED in triggers and begun:
            await self._webhooks.schedule(
                _message(batch_id, record, summary, STARTED, now_ms), now_ms
            )
        if not summary.finished:
            return False
        if COMPLETED in triggers:
            finished = summary.finished_at or datetime.now(UTC)
            event_ms = int(finished.timestamp() * 1000)
            await self._webhooks.schedule(
                _message(batch_id, record, summary, COMPLETED, event_ms), now_ms
            )
        await self._webhooks.unwatch(batch_id)
        return True


def _message(
    batch_id: str, record: records.BatchRecord, summary: sql.Summary, trigger: str, event_ms: int
) -> Message:
    """The batch's message for `trigger`, its body the batch as it is now; `event_ms` when what
    it tells of happened (a start is known when it is seen)."""
    return Message(
        webhook_id=message_id(batch_id, trigger),
        job_id=batch_id,
        trigger=trigger,
        url=record.webhook,
        tenant=record.tenant,
        partition=0,
        lane=DEFAULT_LANE.name,
        body=render(batch_id, summary),
        event_ms=event_ms,
    )
