"""The consumer loop: read JobRequested from the workers group, infer, append the outcome.

An entry is acknowledged only by the script that appends its terminal event, so a consumer that
dies mid-job leaves the entry pending, and another consumer claims it after `claim_idle_ms`.
An entry claimed more than `max_deliveries` times is taken to crash whoever runs it: its job
fails and the request is copied to the dead-letter stream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import redis
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from classifier.registry import Prediction
from consumer import metrics
from consumer.deadletters import dead_letter_fields
from consumer.holding import HeldEntries
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from domain.errors import DeliveryLimitExceededError, InferFlowError
from domain.events import (
    Event,
    JobFailed,
    JobRequested,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    decode,
)
from infra import spans
from infra.eventlog import FINISH_SCRIPT, Entry, finish_args, stream_entries, stream_fields
from infra.tracing import trace_id

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, InferFlowError) and exc.transient


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
        self._runner = runner
        self._clock = clock
        self._names = settings.names
        self._finish = client.register_script(FINISH_SCRIPT)
        self._next_claim_at = 0.0
        self._claim_cursor = "0-0"
        self._stop = threading.Event()
        self.held = HeldEntries(client, self._names, self.name, settings.claim_idle_ms)

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
        entries = self._claim_stale() + self._read_new()
        ids = [entry_id for entry_id, _ in entries]
        if entries:
            metrics.BATCH_SIZE.observe(len(entries))
        self.held.hold(ids)
        try:
            for entry_id, fields in entries:
                if self._stop.is_set():
                    break
                self._handle(entry_id, fields)
                self.held.release(entry_id)
        except BaseException:
            # Stop the heartbeat for the whole batch: once idle, any consumer (this one
            # included) claims the entries again. Kept alive, they would never run.
            self.held.release(*ids)
            raise
        return len(entries)

    def _hand_back(self) -> None:
        try:
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

    def _read_new(self) -> list[Entry]:
        reply = self._redis.xreadgroup(
            self._names.workers_group,
            self.name,
            {self._names.events: ">"},
            count=self._settings.read_count,
            block=self._settings.read_block_ms,
        )
        return stream_entries(reply)

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
            count=self._settings.read_count,
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
            self._redis.xack(self._names.events, self._names.workers_group, entry_id)
            return
        failed = self._failure(fields["job_id"], 0, error)
        letter = dead_letter_fields(entry_id, fields, deliveries, str(error), self._clock())
        if self._redis_finish(entry_id, failed, letter):
            metrics.DEAD_LETTERS.inc()
            metrics.JOBS.labels("failed").inc()
            log.error(
                "job sent to the dead-letter stream",
                extra={
                    **self._job_fields(fields["job_id"], fields.get("traceparent", "")),
                    "event": "JobFailed",
                    "error": str(error),
                    "deliveries": deliveries,
                },
            )

    def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        if fields.get("type") != JobRequested.__name__:
            # The log also carries outcome events; workers only act on requests.
            self._redis.xack(self._names.events, self._names.workers_group, entry_id)
            return
        try:
            request = decode(fields)
        except InferFlowError as exc:
            self._refuse(entry_id, fields, exc)
            return
        assert isinstance(request, JobRequested)
        attributes = {"inferflow.job_id": request.job_id, "inferflow.consumer": self.name}
        with spans.span("inferflow.infer", request.traceparent, **attributes) as current:
            self._append(
                JobStarted(
                    job_id=request.job_id, occurred_at=self._clock(), consumer=self.name, attempt=1
                )
            )
            began = time.perf_counter()
            outcome = self._execute(request)
            finished = self._redis_finish(entry_id, outcome)
            outcome_name = self._report(
                request, outcome, finished, (time.perf_counter() - began) * 1000
            )
            current.set(
                **{
                    "inferflow.attempt": getattr(outcome, "attempt", 0),
                    "inferflow.outcome": outcome_name,
                }
            )
            if isinstance(outcome, JobFailed):
                current.fail(outcome.error)

    def _job_fields(self, job_id: str, traceparent: str) -> dict[str, object]:
        """The structured log fields naming a job and this consumer."""
        fields: dict[str, object] = {"job_id": job_id, "consumer": self.name}
        if trace := trace_id(traceparent):
            fields["trace_id"] = trace
        return fields

    def _report(
        self, request: JobRequested, outcome: Event, finished: bool, duration_ms: float
    ) -> str:
        """Count and log the job's outcome; returns it: succeeded, failed or superseded."""
        extra = {
            **self._job_fields(request.job_id, request.traceparent),
            "event": type(outcome).__name__,
            "attempt": getattr(outcome, "attempt", 0),
            "duration_ms": round(duration_ms, 3),
        }
        if not finished:
            metrics.JOBS.labels("superseded").inc()
            log.warning("job claimed by another consumer; dropped our outcome", extra=extra)
            return "superseded"
        result = "succeeded" if isinstance(outcome, JobSucceeded) else "failed"
        metrics.JOBS.labels(result).inc()
        if isinstance(outcome, JobFailed):
            extra["error"] = outcome.error
        log.info("job finished", extra=extra)
        return result

    def _execute(self, request: JobRequested) -> Event:
        attempt_no, elapsed_ms = 0, 0.0
        retrying = Retrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=self._settings.retry_initial_ms / 1000,
                max=self._settings.retry_max_ms / 1000,
                jitter=self._settings.retry_jitter_ms / 1000,
            ),
            retry=retry_if_exception(_is_transient),
            before_sleep=lambda state: self._announce_retry(request, state),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempt_no = attempt.retry_state.attempt_number
                    began = time.perf_counter()
                    try:
                        prediction = self._runner.predict(
                            request.text, request.model_version, attempt_no
                        )
                    finally:
                        elapsed_s = time.perf_counter() - began
                        metrics.INFERENCE_SECONDS.observe(elapsed_s)
                    elapsed_ms = elapsed_s * 1000
        except InferFlowError as exc:
            return self._failed(request, attempt_no, exc)
        return self._succeeded(request, attempt_no, prediction, elapsed_ms)

    def _announce_retry(self, request: JobRequested, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay_s = state.next_action.sleep if state.next_action else 0.0
        metrics.RETRIES.labels(type(exc).__name__).inc()
        log.info(
            "attempt failed; retrying",
            extra={
                **self._job_fields(request.job_id, request.traceparent),
                "event": "JobRetrying",
                "attempt": state.attempt_number,
                "error": str(exc),
                "delay_ms": round(delay_s * 1000),
            },
        )
        self._append(
            JobRetrying(
                job_id=request.job_id,
                occurred_at=self._clock(),
                consumer=self.name,
                attempt=state.attempt_number,
                error_type=type(exc).__name__,
                error=str(exc),
                delay_ms=round(delay_s * 1000),
            )
        )

    def _succeeded(
        self, request: JobRequested, attempt: int, prediction: Prediction, elapsed_ms: float
    ) -> Event:
        return JobSucceeded(
            job_id=request.job_id,
            occurred_at=self._clock(),
            consumer=self.name,
            attempt=attempt,
            label=prediction.label,
            score=prediction.score,
            probabilities=prediction.probabilities,
            model_version=request.model_version,
            inference_ms=round(elapsed_ms, 3),
        )

    def _failed(self, request: JobRequested, attempt: int, exc: InferFlowError) -> Event:
        reason = f"gave up after {attempt} attempts: {exc}" if exc.transient else str(exc)
        return self._failure(request.job_id, attempt, exc, reason)

    def _failure(
        self, job_id: str, attempt: int, exc: InferFlowError, reason: str | None = None
    ) -> JobFailed:
        return JobFailed(
            job_id=job_id,
            occurred_at=self._clock(),
            consumer=self.name,
            attempt=attempt,
            error_type=type(exc).__name__,
            error=str(exc) if reason is None else reason,
            transient=exc.transient,
        )

    def _refuse(self, entry_id: str, fields: dict[str, str], exc: InferFlowError) -> None:
        """A request that does not decode cannot run; fail its job if it names one."""
        job_id = fields.get("job_id")
        if not job_id:
            log.error("dropping undecodable entry", extra={"entry_id": entry_id, "error": str(exc)})
            self._redis.xack(self._names.events, self._names.workers_group, entry_id)
            return
        failed = self._failure(job_id, 0, exc)
        if self._redis_finish(entry_id, failed):
            metrics.JOBS.labels("failed").inc()
            log.error(
                "job failed: its request does not decode",
                extra={**self._job_fields(job_id, ""), "event": "JobFailed", "error": str(exc)},
            )

    def _append(self, event: Event) -> None:
        self._redis.xadd(self._names.events, stream_fields(event))

    def _redis_finish(
        self, entry_id: str, outcome: Event, dead_letter: dict[str, str] | None = None
    ) -> bool:
        keys, argv = finish_args(self._names, self.name, entry_id, outcome, dead_letter)
        return self._finish(keys=keys, args=argv) is not None
