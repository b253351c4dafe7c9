"""Helpers the integration and end-to-end tests share."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from domain.events import Event, JobFailed, JobRequested, decode, encode
from domain.ids import new_job_id
from infra.eventlog import SUBMIT_SCRIPT, parse_submission, submit_args
from infra.names import Names

MODEL_VERSION = "spam-tfidf-lr-v1"


def submit(
    client: redis.Redis,
    names: Names,
    text: str,
    model_version: str = MODEL_VERSION,
    idempotency_key: str | None = None,
) -> str:
    """Accept a job the way the API does, through the same script."""
    event = JobRequested(
        job_id=new_job_id(),
        occurred_at=datetime.now(UTC),
        text=text,
        model_version=model_version,
    )
    keys, argv = submit_args(names, event, idempotency_key, "fp", 3600, 3600)
    reply = client.register_script(SUBMIT_SCRIPT)(keys=keys, args=argv)
    return parse_submission(reply).job_id


def log_events(client: redis.Redis, names: Names) -> list[tuple[str, Event]]:
    return [(entry_id, decode(fields)) for entry_id, fields in client.xrange(names.events)]


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
    client.xadd(names.events, encode(failed))
