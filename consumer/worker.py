"""The consumer loop of one partition: read its lanes from their workers group, infer in
batches, append the outcomes.

Reading, claiming, the heartbeat and finishing are the consumer group's (eventlog.group: one
`PartitionGroup` over every lane of the partition); this module decides what to do with what it
reads. A round serves the interactive lanes first and gives every lane an equal share of what
is left (eventlog.group.PartitionGroup.read_round); each lane's entries are then a batch of
their own, interactive lanes first, and every event of a job goes to its own lane's stream. An
entry claimed more than `max_deliveries` times is taken to crash whoever runs it: its job fails
and the request is copied to the dead-letter stream, with the lane it came from (unless the job
was cancelled meanwhile: then it is only acknowledged). Jobs whose deadline passes are the
deadline sweeper's (consumer.deadlines), a thread of its own in the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial

import redis

from consumer import metrics, outcomes, reporting
from consumer.batch import BatchJobs, partition
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from consumer.single import SingleJob
from domain.errors import InferFlowError
from domain.events import JobRequested, decode
from eventlog.connection import Client
from eventlog.deadletters import dead_letter_fields
from eventlog.entries import Entry
from eventlog.errors import DeliveryLimitExceededError, NotReplicatedError
from eventlog.group import GroupOptions, PartitionGroup
from eventlog.lanes import Lane
from eventlog.runs import Verdict

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _request(fields: dict[str, str]) -> JobRequested | None:
    """The request of an entry, for its deadline and batch; None when it does not decode."""
    try:
        request = decode(fields)
    except InferFlowError:
        return None
    return request if isinstance(request, JobRequested) else None


class Worker:
    def __init__(
        self,
        settings: ConsumerSettings,
        client: Client,
        runner: InferenceRunner,
        clock: Callable[[], datetime] = _now,
        partition: int = 0,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self.partition = partition
        names = settings.names
        options = GroupOptions(
            claim_idle_ms=settings.claim_idle_ms,
            claim_interval_ms=settings.claim_interval_ms,
            max_deliveries=settings.max_deliveries,
            replicas=settings.outcome_replicas,
            replicas_timeout_ms=settings.outcome_replicas_timeout_ms,
        )
        self.group = PartitionGroup(
            client,
            names,
            partition,
            names.workers_group,
            self.name,
            options,
            settings.lanes_refresh_ms,
            run_ttl_s=settings.job_index_ttl_s,
        )
        self.held = self.group.held
        self._batch = BatchJobs(self.name, runner, clock)
        self._single = SingleJob(settings, runner, clock)
        self._stop = threading.Event()

    @property
    def name(self) -> str:
        return self._settings.consumer_name

    def ensure_group(self) -> None:
        """Find the partition's lanes and join the group on each (created at the start of a
        lane that has none yet)."""
        self.group.refresh(force=True)

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
                except (redis.RedisError, NotReplicatedError) as exc:
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
        """Handle one round of entries: stale ones claimed from dead consumers, then new ones,
        lane by lane; how many entries it handled."""
        work = self._claim_stale()
        room = self._settings.batch_max_size - sum(len(entries) for entries in work.values())
        read = self.group.read_round(
            room, self._settings.read_block_ms, self._settings.batch_max_wait_ms, self._stop
        )
        for lane, entries in read.items():
            work[lane] = work.get(lane, []) + entries
        handled = sum(len(entries) for entries in work.values())
        if handled:
            metrics.BATCH_SIZE.observe(handled)
            self.process(work)
        return handled

    def process(self, work: Mapping[Lane, Sequence[Entry]]) -> None:
        """Work on entries this consumer holds, a batch per lane, in the order lanes are served
        (interactive first); what is left when it stops is handed back."""
        lanes = [lane for lane in self.group.lanes if work.get(lane)]
        for lane in lanes:
            self.group.lane(lane).hold(entry_id for entry_id, _ in work[lane])
        try:
            for lane in lanes:
                self._process(lane, work[lane])
        except BaseException:
            # Stop the heartbeat for the whole round: once idle, any consumer (this one
            # included) claims the entries again. Kept alive, they would never run.
            for lane in lanes:
                self.group.lane(lane).release(*(entry_id for entry_id, _ in work[lane]))
            raise

    def _process(self, lane: Lane, entries: Sequence[Entry]) -> None:
        if self._stop.is_set():
            return
        group = self.group.lane(lane)
        began = time.perf_counter()
        part = partition(entries, self._settings.fault_injection)
        if not (part.batch or part.alone):
            # Two of a job's three entries are outcome events that the group reads too. A round
            # trip of their own would cost as much as the job's other work; the next read (at
            # once: the loop goes straight back to reading) carries them instead.
            group.defer_ack(*part.acks)
            group.release(*part.acks)
            return
        result = self._batch.run(group, part)
        tally: Counter[str] = Counter(result.tally)
        failed = {entry_id for entry_id, _ in result.alone}
        group.release(*part.acks, *(e for e, _ in part.batch if e not in failed))
        alone: list[tuple[str, Callable[[], str | None]]] = [
            (e, partial(self._single.run, group, e, r, True)) for e, r in result.alone
        ]
        alone += [(e, partial(self._single.run_entry, group, e, f)) for e, f in part.alone]
        for entry_id, run in alone:
            if self._stop.is_set():
                break  # the rest stays held, to be handed back
            if name := run():
                tally[name] += 1
            group.release(entry_id)
        duration_ms = (time.perf_counter() - began) * 1000
        reporting.batch(self.name, len(entries), tally, duration_ms, lane.kind)

    def _hand_back(self) -> None:
        try:
            self.group.flush_acks()
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

    def _claim_stale(self) -> dict[Lane, list[Entry]]:
        claimed = self.group.claim_stale(self._settings.batch_max_size)
        taken = sum(len(c.entries) + len(c.over_limit) for c in claimed.values())
        if not taken:
            return {}
        metrics.RECLAIMED.inc(taken)
        log.info("claimed stale entries", extra={"consumer": self.name, "entries": taken})
        for lane, found in claimed.items():
            for (entry_id, fields), deliveries in found.over_limit:
                self._dead_letter(lane, entry_id, fields, deliveries)
        return {lane: found.entries for lane, found in claimed.items() if found.entries}

    def _dead_letter(
        self, lane: Lane, entry_id: str, fields: dict[str, str], deliveries: int
    ) -> None:
        group = self.group.lane(lane)
        error = DeliveryLimitExceededError(deliveries, self._settings.max_deliveries)
        if fields.get("type") != JobRequested.__name__ or not fields.get("job_id"):
            group.ack(entry_id)
            return
        failure = outcomes.failed(fields["job_id"], self.name, self._clock(), 0, error)
        letter = dead_letter_fields(
            entry_id, fields, deliveries, str(error), self._clock(), lane.name
        )
        decision = group.finish(entry_id, failure, letter, _request(fields))
        reporting.cancelled(self.name, fields["job_id"], fields.get("traceparent", ""), decision)
        if decision.verdict is Verdict.WRITTEN:
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
                    "lane": lane.kind,
                },
            )
