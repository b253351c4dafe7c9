"""Helpers the integration and end-to-end tests share."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from domain.events import Event, JobFailed, JobRequested, JobSucceeded, decode, encode
from domain.ids import new_job_id
from eventlog.connection import AsyncClient, connect_async, is_cluster
from eventlog.names import Names
from eventlog.submission import Retention
from eventlog.submission import submit as submit_event

MODEL_VERSION = "spam-tfidf-lr-v1"


def one_server(reason: str) -> pytest.MarkDecorator:
    """Skips a test in the run on a Redis Cluster (make test-cluster), for `reason`: what it
    tests exists on one server only. Everything else runs on both."""
    return pytest.mark.skipif(os.environ.get("TEST_REDIS_CLUSTER") == "1", reason=reason)


def async_client(url: str) -> AsyncClient:
    """An asyncio client of the test's Redis, a cluster's when it is one."""
    return connect_async(url, is_cluster(url))


def submit(
    client: redis.Redis,
    names: Names,
    text: str,
    model_version: str = MODEL_VERSION,
    partition: int = 0,
) -> str:
    """Accept a job without a key the way the API does, through the same script."""
    event = JobRequested(
        job_id=new_job_id(partition),
        occurred_at=datetime.now(UTC),
        text=text,
        model_version=model_version,
    )
    retention = Retention(job_index_ttl_s=3600, idempotency_ttl_s=3600)
    return submit_event(client, names, event, retention).job_id


def succeeded(job_id: str, consumer: str = "c", model_version: str = "m") -> JobSucceeded:
    """The outcome a consumer appends for a job it classified as ham."""
    return JobSucceeded(
        job_id=job_id,
        occurred_at=datetime.now(UTC),
        consumer=consumer,
        attempt=1,
        label="ham",
        score=0.9,
        probabilities={"ham": 0.9, "spam": 0.1},
        model_version=model_version,
        inference_ms=0.5,
    )


def log_events(client: redis.Redis, names: Names, partition: int = 0) -> list[tuple[str, Event]]:
    stream = names.events(partition)
    return [(entry_id, decode(fields)) for entry_id, fields in client.xrange(stream)]


def job_events(client: redis.Redis, names: Names, job_id: str) -> list[Event]:
    return [event for _, event in log_events(client, names) if event.job_id == job_id]


def event_types(events: list[Event]) -> list[str]:
    return [type(event).__name__ for event in events]


def append_failure(
    client: redis.Redis,
    names: Names,
    job_id: str,
    error: str = "boom",
    error_type: str = "InferenceError",
    consumer: str = "c",
) -> None:
    """Append a JobFailed for `job_id`, as a consumer would."""
    failed = JobFailed(
        job_id=job_id,
        occurred_at=datetime.now(UTC),
        consumer=consumer,
        attempt=1,
        error_type=error_type,
        error=error,
        transient=False,
    )
    client.xadd(names.events(0), encode(failed))


def race_catch_up(build: Callable[[], Any], attempts: int, threads: int = 3) -> list[BaseException]:
    """`threads` projectors (each `build()`) catching up on one log at once, each trying again
    after losing a race (CheckpointMovedError, as the projector's run() does); what else they
    raised."""
    failures: list[BaseException] = []

    def run() -> None:
        projector = build()
        for _ in range(attempts):
            try:
                projector.catch_up()
                return
            except Exception as exc:
                if type(exc).__name__ != "CheckpointMovedError":
                    failures.append(exc)
                    return

    racers = [threading.Thread(target=run) for _ in range(threads)]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    return failures
