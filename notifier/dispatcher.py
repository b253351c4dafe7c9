"""Sending due webhook messages: leased from each served partition's due set while this process
has room (WEBHOOK_CONCURRENCY deliveries in flight), each sent by a task of its own, so a slow or
silent receiver holds one slot for at most WEBHOOK_TIMEOUT_MS and never the others.

At most WEBHOOK_CONCURRENCY_PER_HOST of them go to one receiver: a message leased beyond that
is given back (due a poll later, no attempt made), so even a receiver with thousands of
messages due, all timing out, leaves the other slots to the other receivers.

An attempt's outcome (`decide`): a 2xx delivers the message; a 410 Gone abandons it (the
receiver asks for no more); anything else (no answer, a refused address, any other status, a
redirect, which is not followed) is retried after the schedule's next delay, or after the
Retry-After of a 429 or 503; once the schedule is spent, the message is abandoned. Every attempt
is a WebhookAttempted in the job's lane, and the end a WebhookDelivered or WebhookAbandoned.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import redis
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from domain.events import Event
from domain.webhooks import WebhookAbandoned, WebhookAttempted, WebhookDelivered, next_delay_s
from eventlog.webhooks import (
    ABANDONED,
    DELIVERED,
    RETRY,
    AsyncWebhookLog,
    Message,
    Outcome,
    dead_letter_fields,
)
from notifier import metrics
from notifier.delivery import Answer, Sender
from notifier.settings import NotifierSettings
from notifier.signing import Signer

log = logging.getLogger(__name__)

GONE = 410
HONOURS_RETRY_AFTER = (429, 503)
# A Retry-After is honoured up to a day: a receiver cannot park a message for ever.
MAX_RETRY_AFTER_S = 86_400.0
# Writes of an attempt's outcome before it is left to the lease's end.
RECORD_ATTEMPTS = 4


def _now() -> datetime:
    return datetime.now(UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def decide(
    message: Message,
    answer: Answer,
    at: datetime,
    schedule_s: Sequence[float],
    jitter: float,
    draw: float,
) -> Outcome:
    """The outcome of the message's next attempt, which got `answer` at `at`."""
    attempt = message.attempts + 1
    common: dict[str, Any] = {
        "job_id": message.job_id,
        "occurred_at": at,
        "webhook_id": message.webhook_id,
        "trigger": message.trigger,
        "url": message.url,
    }

    def attempted(next_at: datetime | None = None) -> WebhookAttempted:
        return WebhookAttempted(
            **common,
            attempt=attempt,
            status_code=answer.status_code,
            error=answer.error,
            duration_ms=round(answer.duration_ms, 3),
            next_attempt_at=next_at,
        )

    def abandoned(reason: str) -> Outcome:
        events: tuple[Event, ...] = (
            attempted(),
            WebhookAbandoned(**common, attempts=attempt, reason=reason),
        )
        letter = dead_letter_fields(message, reason, at)
        return Outcome(ABANDONED, attempt, events, letter=letter)

    if answer.succeeded:
        delivered = WebhookDelivered(**common, attempt=attempt, status_code=answer.status_code)
        return Outcome(DELIVERED, attempt, (attempted(), delivered))
    if answer.status_code == GONE:
        return abandoned("the receiver answered 410 Gone")
    delay = next_delay_s(attempt, schedule_s, jitter, draw)
    if delay is None:
        return abandoned(f"no answer in 2xx after {attempt} attempts")
    if answer.status_code in HONOURS_RETRY_AFTER and answer.retry_after_s is not None:
        delay = min(answer.retry_after_s, MAX_RETRY_AFTER_S)
    next_at = at + timedelta(seconds=delay)
    return Outcome(RETRY, attempt, (attempted(next_at),), next_due_ms=_ms(next_at))


class Dispatcher:
    def __init__(
        self,
        settings: NotifierSettings,
        webhooks: AsyncWebhookLog,
        sender: Sender,
        signer: Signer,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._settings = settings
        self._webhooks = webhooks
        self._sender = sender
        self._signer = signer
        self._clock = clock
        # Deliveries in flight, each with its receiver's host (and port), and how many per host.
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._per_host: Counter[str] = Counter()
        self._lease_size = settings.webhook_concurrency
        self._rng = random.Random()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def run(self, stop: threading.Event) -> None:
        backoff_s = 0.1
        poll_s = self._settings.webhook_poll_ms / 1000
        try:
            while not stop.is_set():
                try:
                    found = await self.dispatch_once()
                    backoff_s = 0.1
                except redis.RedisError as exc:
                    log.warning("redis unavailable; retrying", extra={"error": str(exc)})
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
                    continue
                if not found:
                    await asyncio.sleep(poll_s)
        finally:
            await self._drain()

    async def dispatch_once(self) -> int:
        """Lease due messages of every served partition while there is room, and start their
        deliveries; how many it started (at least 1 when it was full: look again at once)."""
        started, gave_back = 0, 0
        for partition in self._settings.served:
            room = self._settings.webhook_concurrency - len(self._tasks)
            if room <= 0:
                # Full: the next look waits for a slot rather than spin.
                await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                return max(started, 1)
            now_ms = _ms(self._clock())
            leased = await self._webhooks.lease(
                partition, now_ms, self._settings.webhook_lease_ms, min(room, self._lease_size)
            )
            deferred = []
            for message in leased.messages:
                host = urlsplit(message.url).netloc
                if self._per_host[host] >= self._settings.webhook_concurrency_per_host:
                    deferred.append(message)
                    continue
                self._per_host[host] += 1
                task = asyncio.create_task(self.deliver(message, leased.lease_ms))
                self._tasks[task] = host
                metrics.IN_FLIGHT.inc()
                task.add_done_callback(self._finished)
                started += 1
            await self._defer(deferred, leased.lease_ms, now_ms)
            gave_back += len(deferred)
            self._adapt(len(leased.messages) - len(deferred), len(deferred))
        if gave_back:
            # Receivers at their share: look again once a delivery ends (or a poll passes).
            if self._tasks:
                await asyncio.wait(
                    list(self._tasks),
                    timeout=self._settings.webhook_poll_ms / 1000,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            return max(started, 1)
        return started

    def _adapt(self, started: int, deferred: int) -> None:
        """How many messages the next lease takes: as many as could start when some had to be
        given back (leasing more would only give more back), else twice as many, up to the
        concurrency (a backlog of other receivers' messages is taken up quickly)."""
        if deferred:
            self._lease_size = max(1, started)
        else:
            self._lease_size = min(self._settings.webhook_concurrency, 2 * self._lease_size)

    async def _defer(self, messages: Sequence[Message], lease_ms: int, now_ms: int) -> None:
        """Give back messages whose receiver has as many deliveries in flight as it may: due
        again a poll later, no attempt made, so one receiver's backlog never fills every slot."""
        if not messages:
            return
        due_ms = now_ms + self._settings.webhook_poll_ms
        await asyncio.gather(
            *(
                self._webhooks.outcome(m, lease_ms, Outcome(RETRY, m.attempts, (), due_ms))
                for m in messages
            )
        )

    def _finished(self, task: asyncio.Task[None]) -> None:
        host = self._tasks.pop(task)
        self._per_host[host] -= 1
        if not self._per_host[host]:
            del self._per_host[host]
        metrics.IN_FLIGHT.dec()

    async def deliver(self, message: Message, lease_ms: int) -> None:
        """One attempt of `message` and its outcome, written while the lease holds. A failure
        to sign or to write leaves the message leased: it comes due again when the lease ends."""
        body = message.body.encode()
        try:
            headers = await self._signer.sign(message.tenant, message.webhook_id, body)
            answer = await self._sender.send(message.url, body, headers)
            outcome = decide(
                message,
                answer,
                self._clock(),
                self._settings.schedule_s,
                self._settings.webhook_jitter,
                self._rng.random(),
            )
            written = await self._record(message, lease_ms, outcome)
        except Exception:
            log.exception(
                "webhook attempt not recorded; it is sent again when its lease ends",
                extra={"webhook_id": message.webhook_id, "job_id": message.job_id},
            )
            return
        metrics.ATTEMPTS.labels(outcome.kind if written else "lost").inc()
        if written and outcome.kind == DELIVERED:
            metrics.DELAY.observe(max(0.0, _ms(self._clock()) - message.event_ms) / 1000)
        log.info(
            "webhook attempt",
            extra={
                "webhook_id": message.webhook_id,
                "job_id": message.job_id,
                "attempt": outcome.attempts,
                "status_code": answer.status_code,
                "error": answer.error,
                "outcome": outcome.kind,
                "lease_lost": not written,
            },
        )

    async def _record(self, message: Message, lease_ms: int, outcome: Outcome) -> bool:
        """Write the attempt's outcome, tried again on a Redis error for a moment: the receiver
        has had the message, and an outcome not written sends it once more when the lease
        ends."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(redis.RedisError),
            stop=stop_after_attempt(RECORD_ATTEMPTS),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            reraise=True,
        ):
            with attempt:
                return await self._webhooks.outcome(message, lease_ms, outcome)
        raise AssertionError("unreachable: the last attempt raises")

    async def _drain(self, timeout_s: float = 5.0) -> None:
        """On stop: let deliveries in flight finish for a moment; the rest are cancelled and
        come due again when their leases end."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
