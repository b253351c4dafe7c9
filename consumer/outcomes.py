"""The events a consumer writes, and writing them: one at a time, or a batch's in one round trip.

Every terminal event goes through the FINISH script (infra/eventlog.py), which appends it and
acknowledges the request only while the entry is still this consumer's. Pipelining many FINISH
calls keeps that guarantee: each still runs as its own atomic script.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import redis
from redis.exceptions import NoScriptError

from classifier.registry import Prediction
from domain.errors import InferFlowError
from domain.events import Event, JobFailed, JobRequested, JobStarted, JobSucceeded
from infra.eventlog import FINISH_SCRIPT, finish_args, stream_fields
from infra.names import Names


def started(request: JobRequested, consumer: str, at: datetime) -> JobStarted:
    return JobStarted(job_id=request.job_id, occurred_at=at, consumer=consumer, attempt=1)


def succeeded(
    request: JobRequested,
    consumer: str,
    at: datetime,
    attempt: int,
    prediction: Prediction,
    inference_ms: float,
) -> JobSucceeded:
    return JobSucceeded(
        job_id=request.job_id,
        occurred_at=at,
        consumer=consumer,
        attempt=attempt,
        label=prediction.label,
        score=prediction.score,
        probabilities=prediction.probabilities,
        model_version=request.model_version,
        inference_ms=round(inference_ms, 3),
    )


def failed(
    job_id: str,
    consumer: str,
    at: datetime,
    attempt: int,
    exc: InferFlowError,
    reason: str | None = None,
) -> JobFailed:
    return JobFailed(
        job_id=job_id,
        occurred_at=at,
        consumer=consumer,
        attempt=attempt,
        error_type=type(exc).__name__,
        error=str(exc) if reason is None else reason,
        transient=exc.transient,
    )


class OutcomeLog:
    """Appends a consumer's events to the log and finishes its jobs."""

    def __init__(self, client: redis.Redis, names: Names, consumer: str) -> None:
        self._redis = client
        self._names = names
        self._consumer = consumer
        self._finish = client.register_script(FINISH_SCRIPT)

    def append(self, event: Event) -> None:
        self._redis.xadd(self._names.events, stream_fields(event))

    def ack(self, *entry_ids: str) -> None:
        self._redis.xack(self._names.events, self._names.workers_group, *entry_ids)

    def finish(
        self, entry_id: str, outcome: Event, dead_letter: Mapping[str, str] | None = None
    ) -> bool:
        """Append the outcome and acknowledge the entry; False when it is no longer ours."""
        keys, argv = finish_args(self._names, self._consumer, entry_id, outcome, dead_letter)
        return self._finish(keys=keys, args=argv) is not None

    def start(self, events: Sequence[JobStarted], ack_ids: Sequence[str]) -> None:
        """Append JobStarted events and acknowledge entries that need no work: one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        if ack_ids:
            pipe.xack(self._names.events, self._names.workers_group, *ack_ids)
        for event in events:
            pipe.xadd(self._names.events, stream_fields(event))
        pipe.execute()

    def finish_all(self, outcomes: Sequence[tuple[str, Event]]) -> list[bool]:
        """`finish` for every (entry id, outcome), in one round trip."""
        calls = [finish_args(self._names, self._consumer, e, o) for e, o in outcomes]
        replies = self._evalsha(calls)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            # Redis lost its script cache (restart, SCRIPT FLUSH). The calls that met NOSCRIPT
            # did not run, so running them again cannot write a second outcome.
            self._finish.sha = self._redis.script_load(FINISH_SCRIPT)
            again = self._evalsha([calls[i] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return [reply is not None for reply in replies]

    def _evalsha(self, calls: Sequence[tuple[list[str], list[str]]]) -> list[Any]:
        # EVALSHA by hand: a Script called on a pipeline costs a SCRIPT EXISTS round trip.
        pipe = self._redis.pipeline(transaction=False)
        for keys, argv in calls:
            pipe.evalsha(self._finish.sha, len(keys), *keys, *argv)
        return list(pipe.execute(raise_on_error=False))
