"""The consumer loop: read from the workers group, infer in batches, append the outcomes.

An entry is acknowledged only by the script that appends its terminal event, so a consumer that
dies mid-job leaves the entry pending, and another consumer claims it after `claim_idle_ms`.
An entry claimed more than `max_deliveries` times is taken to crash whoever runs it: its job
fails and the request is copied to the dead-letter stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

import redis

from consumer import metrics, outcomes, reporting
from consumer.batch import BatchJobs, partition
from consumer.deadletters import dead_letter_fields
from consumer.holding import HeldEntries
from consumer.inference import InferenceRunner
from consumer.outcomes import OutcomeLog
from consumer.settings import ConsumerSettings
from consumer.single import SingleJob
from domain.errors import DeliveryLimitExceededError
from domain.events import JobRequested
from infra.eventlog import Entry, stream_entries

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class Worker:
    def __init__(
        self,
        settings: ConsumerSettings,
        client: redis.Redis,
        runner: InferenceRunner,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._settings = settings
        self._redis = client
        self._clock = clock
        self._names = settings.names
        self.outcomes = OutcomeLog(client, self._names, self.name)
        self._batch = BatchJobs(self.name, runner, self.outcomes, clock)
        self._single = SingleJob(settings, runner, self.outcomes, clock)
        self._next_claim_at = 0.0
        self._claim_cursor = "0-0"
        self._stop = threading.Event()
        self.held = HeldEntries(client, self._names, self.name, settings.claim_idle_ms)
        # Outcome events read with nothing to work on, acknowledged with the next read.
        self._deferred_acks: list[str] = []

    @property
    def name(self) -> str:
        return self._settings.consumer_name

    def ensure_group(self) -> None:
        """Create the workers group at the start of the log, so no earlier job is skipped."""
        try:
            self._redis.xgroup_create(
                self._names.events, self._names.workers_group, "0", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def run(self, stop: threading.Event) -> None:
        """Work until `stop` is set, then hand back what was not started and return."""
        self._stop = stop
        self.ensure_group()
        self.held.start()
        backoff_s = 0.1
        try:
            while not stop.is_set():
                try:
                    self.poll_once()
                    backoff_s = 0.1
                except redis.RedisError as exc:
                    log.warning(
                        "redis unavailable; retrying",
                        extra={"consumer": self.name, "error": str(exc), "retry_in_s": backoff_s},
                    )
                    stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
        finally:
            self._hand_back()
            self.held.close()

    def poll_once(self) -> int:
        """Handle one batch of entries: stale ones claimed from dead consumers, then new ones."""
        entries = self._claim_stale()
        entries += self._read_new(self._settings.batch_max_size - len(entries))
        if entries:
            metrics.BATCH_SIZE.observe(len(entries))
            self.process(entries)
        return len(entries)

    def process(self, entries: Sequence[Entry]) -> None:
        """Work on entries this consumer holds; what is left when it stops is handed back."""
        ids = [entry_id for entry_id, _ in entries]
        self.held.hold(ids)
        try:
            self._process(entries)
        except BaseException:
            # Stop the heartbeat for the whole batch: once idle, any consumer (this one
            # included) claims the entries again. Kept alive, they would never run.
            self.held.release(*ids)
            raise

    def _process(self, entries: Sequence[Entry]) -> None:
        if self._stop.is_set():
            return
        began = time.perf_counter()
        part = partition(entries, self._settings.fault_injection)
        if not (part.batch or part.alone):
            # Two of a job's three entries are outcome events that the group reads too. A round
            # trip of their own would cost as much as the job's other work; the next read (at
            # once: the loop goes straight back to reading) carries them instead.
            self._deferred_acks += part.acks
            self.held.release(*part.acks)
            return
        result = self._batch.run(part)
        tally: Counter[str] = Counter(result.tally)
        failed = {entry_id for entry_id, _ in result.alone}
        self.held.release(*part.acks, *(e for e, _ in part.batch if e not in failed))
        alone: list[tuple[str, Callable[[], str | None]]] = [
            (e, partial(self._single.run, e, r, True)) for e, r in result.alone
        ]
        alone += [(e, partial(self._single.run_entry, e, f)) for e, f in part.alone]
        for entry_id, run in alone:
            if self._stop.is_set():
                break  # the rest stays held, to be handed back
            if name := run():
                tally[name] += 1
            self.held.release(entry_id)
        reporting.batch(self.name, len(entries), tally, (time.perf_counter() - began) * 1000)

    def _hand_back(self) -> None:
        try:
            self._flush_acks()
            if handed := self.held.hand_back():
                log.info(
                    "handed back entries for other consumers",
                    extra={"consumer": self.name, "entries": handed},
                )
        except redis.RedisError as exc:
            log.warning(
                "could not hand back entries; they will be claimed when idle",
                extra={"consumer": self.name, "error": str(exc)},
            )

    def _read_new(self, room: int) -> list[Entry]:
        if room <= 0:
            return []
        entries = self._read(room, self._settings.read_block_ms)
        if entries and self._settings.batch_max_wait_ms:
            entries += self._fill(room - len(entries))
        return entries

    def _fill(self, room: int) -> list[Entry]:
        """Go on reading for `batch_max_wait_ms` after the first entry while there is room."""
        deadline = time.monotonic() + self._settings.batch_max_wait_ms / 1000
        more: list[Entry] = []
        while room > 0 and not self._stop.is_set():
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms < 1:  # BLOCK 0 would wait forever
                break
            got = self._read(room, left_ms)
            more += got
            room -= len(got)
        return more

    def _read(self, count: int, block_ms: int) -> list[Entry]:
        """XREADGROUP, after the XACK of the deferred acknowledgements in the same round trip."""
        group = self._names.workers_group
        acks, self._deferred_acks = self._deferred_acks, []
        if not acks:
            return stream_entries(
                self._redis.xreadgroup(
                    group, self.name, {self._names.events: ">"}, count=count, block=block_ms
                )
            )
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(self._names.events, group, *acks)
        pipe.xreadgroup(group, self.name, {self._names.events: ">"}, count=count, block=block_ms)
        try:
            _, reply = pipe.execute()
        except redis.RedisError:
            self._deferred_acks = acks + self._deferred_acks
            raise
        return stream_entries(reply)

    def _flush_acks(self) -> None:
        acks, self._deferred_acks = self._deferred_acks, []
        if acks:
            self.outcomes.ack(*acks)

    def _claim_stale(self) -> list[Entry]:
        if time.monotonic() < self._next_claim_at:
            return []
        self._next_claim_at = time.monotonic() + self._settings.claim_interval_ms / 1000
        cursor, claimed, _deleted = self._redis.xautoclaim(
            self._names.events,
            self._names.workers_group,
            self.name,
            min_idle_time=self._settings.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self._settings.batch_max_size,
        )
        self._claim_cursor = cursor
        entries = [(entry_id, fields) for entry_id, fields in claimed if fields is not None]
        if not entries:
            return []
        metrics.RECLAIMED.inc(len(entries))
        log.info("claimed stale entries", extra={"consumer": self.name, "entries": len(entries)})
        deliveries = self._deliveries([entry_id for entry_id, _ in entries])
        over = {i for i, n in deliveries.items() if n > self._settings.max_deliveries}
        for entry_id, fields in entries:
            if entry_id in over:
                self._dead_letter(entry_id, fields, deliveries[entry_id])
        return [entry for entry in entries if entry[0] not in over]

    def _deliveries(self, entry_ids: list[str]) -> dict[str, int]:
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(
                self._names.events, self._names.workers_group, entry_id, entry_id, 1, self.name
            )
        replies = pipe.execute()
        return {
            reply[0]["message_id"]: int(reply[0]["times_delivered"]) for reply in replies if reply
        }

    def _dead_letter(self, entry_id: str, fields: dict[str, str], deliveries: int) -> None:
        error = DeliveryLimitExceededError(deliveries, self._settings.max_deliveries)
        if fields.get("type") != JobRequested.__name__ or not fields.get("job_id"):
            self.outcomes.ack(entry_id)
            return
        failure = outcomes.failed(fields["job_id"], self.name, self._clock(), 0, error)
        letter = dead_letter_fields(entry_id, fields, deliveries, str(error), self._clock())
        if self.outcomes.finish(entry_id, failure, letter):
            metrics.DEAD_LETTERS.inc()
            metrics.JOBS.labels(reporting.FAILED).inc()
            log.error(
                "job sent to the dead-letter stream",
                extra={
                    **reporting.job_fields(
                        self.name, fields["job_id"], fields.get("traceparent", "")
                    ),
                    "event": "JobFailed",
                    "error": str(error),
                    "deliveries": deliveries,
                },
            )
