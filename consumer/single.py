"""Running one job alone: the path for requests that cannot join a batch.

That is a request that does not decode, one whose text asks for injected faults, and every job
of a batch whose vectorized prediction failed, so that one poison text fails only its own job.
Each attempt is retried under tenacity when its error is transient, and each retry is a
JobRetrying event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from classifier.registry import Prediction
from consumer import metrics, outcomes, reporting
from consumer.errors import RunEndedError
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from domain.errors import InferFlowError
from domain.events import Event, JobFailed, JobRequested, JobRetrying, decode
from eventlog.group import ConsumerGroup
from eventlog.runs import Verdict
from runtime import spans

log = logging.getLogger(__name__)


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, InferFlowError) and exc.transient


class SingleJob:
    def __init__(
        self,
        settings: ConsumerSettings,
        runner: InferenceRunner,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._runner = runner
        self._clock = clock
        self._name = settings.consumer_name

    def run_entry(self, lane: ConsumerGroup, entry_id: str, fields: dict[str, str]) -> str | None:
        """Decode and run a request entry of `lane` (whose stream gets the job's events); its
        outcome name (None: no job to speak of)."""
        try:
            request = decode(fields)
        except InferFlowError as exc:
            return self._refuse(lane, entry_id, fields, exc)
        assert isinstance(request, JobRequested)
        return self.run(lane, entry_id, request, started=False)

    def run(self, lane: ConsumerGroup, entry_id: str, request: JobRequested, started: bool) -> str:
        """Run the job of an entry of `lane` (beginning it by START unless a batch already did);
        its outcome name."""
        attributes = {"inferflow.job_id": request.job_id, "inferflow.consumer": self._name}
        with spans.span("inferflow.infer", request.traceparent, **attributes) as current:
            if not started:
                (begun,) = lane.start([(entry_id, request)], self._clock())
                if begun.verdict is not Verdict.STARTED:
                    name = reporting.unstarted_name(begun)
                    reporting.cancelled(self._name, request.job_id, request.traceparent, begun)
                    metrics.JOBS.labels(name).inc()
                    current.set(**{"inferflow.outcome": name})
                    return name
            began = time.perf_counter()
            outcome = self._execute(lane, request)
            decision = lane.finish(entry_id, outcome, request=request)
            name = reporting.outcome_name(outcome, decision)
            duration_ms = (time.perf_counter() - began) * 1000
            reporting.job(self._name, request, outcome, name, duration_ms)
            reporting.cancelled(self._name, request.job_id, request.traceparent, decision)
            metrics.JOBS.labels(name).inc()
            attempt = getattr(outcome, "attempt", 0)
            current.set(**{"inferflow.attempt": attempt, "inferflow.outcome": name})
            if isinstance(outcome, JobFailed) and name == reporting.FAILED:
                current.fail(outcome.error)
        return name

    def _execute(self, lane: ConsumerGroup, request: JobRequested) -> Event:
        attempt_no, elapsed_ms = 0, 0.0
        retrying = Retrying(
            stop=stop_after_attempt(self._settings.max_attempts),
            wait=wait_exponential_jitter(
                multiplier=self._settings.retry_initial_ms / 1000,
                max=self._settings.retry_max_ms / 1000,
                jitter=self._settings.retry_jitter_ms / 1000,
            ),
            retry=retry_if_exception(_is_transient),
            before_sleep=lambda state: self._announce_retry(lane, request, state),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    attempt_no = attempt.retry_state.attempt_number
                    prediction, elapsed_ms = self._attempt(request, attempt_no)
        except InferFlowError as exc:
            reason = f"gave up after {attempt_no} attempts: {exc}" if exc.transient else None
            at = self._clock()
            return outcomes.failed(request.job_id, self._name, at, attempt_no, exc, reason)
        at = self._clock()
        return outcomes.succeeded(request, self._name, at, attempt_no, prediction, elapsed_ms)

    def _attempt(self, request: JobRequested, attempt: int) -> tuple[Prediction, float]:
        began = time.perf_counter()
        try:
            prediction = self._runner.predict(request.text, request.model_version, attempt)
        finally:
            elapsed_s = time.perf_counter() - began
            metrics.INFERENCE_SECONDS.observe(elapsed_s)
        return prediction, elapsed_s * 1000

    def _announce_retry(
        self, lane: ConsumerGroup, request: JobRequested, state: RetryCallState
    ) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay_ms = round((state.next_action.sleep if state.next_action else 0.0) * 1000)
        retrying = JobRetrying(
            job_id=request.job_id,
            occurred_at=self._clock(),
            consumer=self._name,
            attempt=state.attempt_number,
            error_type=type(exc).__name__,
            error=str(exc),
            delay_ms=delay_ms,
        )
        if not lane.note(retrying):
            # Cancelled while it ran: no more attempts. Raised out of the retry loop, it makes
            # the job's outcome a failure that FINISH then drops.
            raise RunEndedError(request.job_id)
        metrics.RETRIES.labels(type(exc).__name__).inc()
        log.info(
            "attempt failed; retrying",
            extra={
                **reporting.job_fields(self._name, request.job_id, request.traceparent),
                "event": "JobRetrying",
                "attempt": state.attempt_number,
                "error": str(exc),
                "delay_ms": delay_ms,
            },
        )

    def _refuse(
        self, lane: ConsumerGroup, entry_id: str, fields: dict[str, str], exc: InferFlowError
    ) -> str | None:
        """A request that does not decode cannot run; fail its job if it names one."""
        job_id = fields.get("job_id")
        if not job_id:
            log.error("dropping undecodable entry", extra={"entry_id": entry_id, "error": str(exc)})
            lane.ack(entry_id)
            return None
        failure = outcomes.failed(job_id, self._name, self._clock(), 0, exc)
        name = reporting.outcome_name(failure, lane.finish(entry_id, failure))
        metrics.JOBS.labels(name).inc()
        if name != reporting.FAILED:
            return name
        log.error(
            "job failed: its request does not decode",
            extra={
                **reporting.job_fields(self._name, job_id, ""),
                "event": "JobFailed",
                "error": str(exc),
            },
        )
        return reporting.FAILED
