"""Webhooks in the domain: the filter, the delivery events on the wire, the retry schedule and
the fold that ignores deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidEventError
from domain.events import (
    JobRequested,
    JobStarted,
    JobSucceeded,
    WebhookAbandoned,
    WebhookAttempted,
    WebhookDelivered,
    decode,
    encode,
    is_terminal,
)
from domain.job import JobStatus, fold
from domain.webhooks import (
    COMPLETED,
    DEFAULT_SCHEDULE_S,
    STARTED,
    InvalidFilterError,
    format_filter,
    message_id,
    next_delay_s,
    parse_filter,
)

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
JOB = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
URL = "https://example.com/hooks?x=1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def attempted(t: float, attempt: int = 1, next_at: datetime | None = None) -> WebhookAttempted:
    return WebhookAttempted(
        job_id=JOB, occurred_at=at(t), webhook_id=message_id(JOB, COMPLETED), trigger=COMPLETED,
        url=URL, attempt=attempt, status_code=503, error="", duration_ms=12.5,
        next_attempt_at=next_at,
    )  # fmt: skip


def delivered(t: float) -> WebhookDelivered:
    return WebhookDelivered(
        job_id=JOB, occurred_at=at(t), webhook_id=message_id(JOB, COMPLETED), trigger=COMPLETED,
        url=URL, attempt=2, status_code=204,
    )  # fmt: skip


def abandoned(t: float) -> WebhookAbandoned:
    return WebhookAbandoned(
        job_id=JOB, occurred_at=at(t), webhook_id=message_id(JOB, STARTED), trigger=STARTED,
        url=URL, attempts=10, reason="the retry schedule is spent",
    )  # fmt: skip


def test_the_filter_defaults_to_completed_and_reads_either_form():
    assert parse_filter("completed") == {COMPLETED}
    assert parse_filter(["started", "completed"]) == {STARTED, COMPLETED}
    assert parse_filter(" started , completed ") == {STARTED, COMPLETED}
    assert format_filter({COMPLETED, STARTED}) == "started,completed"
    assert JobRequested(job_id=JOB, occurred_at=T0, text="t", model_version="m") \
        .webhook_events_filter == COMPLETED  # fmt: skip


@pytest.mark.parametrize("raw", ["", "start", ["completed", "succeeded"], []])
def test_an_unknown_or_empty_filter_is_refused(raw):
    with pytest.raises(InvalidFilterError):
        parse_filter(raw)


@pytest.mark.parametrize("event", [attempted(1, next_at=at(6)), attempted(1), delivered(2),
                                   abandoned(3)])  # fmt: skip
def test_delivery_events_round_trip_as_flat_readable_fields(event):
    fields = encode(event)
    assert fields["type"] == type(event).__name__ and fields["v"] == "1"
    assert all(isinstance(value, str) and "{" not in value for value in fields.values())
    assert fields["webhook_id"] == event.webhook_id
    assert decode(fields) == event
    assert not is_terminal(event)


def test_an_attempt_with_no_next_one_writes_an_empty_time():
    assert encode(attempted(1))["next_attempt_at"] == ""
    assert encode(attempted(1, next_at=at(6)))["next_attempt_at"] == "2026-11-28T12:00:06.000000Z"


def test_a_delivery_event_missing_its_message_id_is_invalid():
    fields = encode(delivered(1))
    del fields["webhook_id"]
    with pytest.raises(InvalidEventError, match="webhook_id"):
        decode(fields)


def test_a_request_carries_its_webhook_on_the_wire():
    event = JobRequested(
        job_id=JOB, occurred_at=T0, text="t", model_version="m", webhook=URL,
        webhook_events_filter="started,completed",
    )  # fmt: skip
    fields = encode(event)
    assert fields["v"] == "4"
    assert (fields["webhook"], fields["webhook_events_filter"]) == (URL, "started,completed")
    assert decode(fields) == event


def test_a_request_from_before_webhooks_has_none():
    v3 = encode(JobRequested(job_id=JOB, occurred_at=T0, text="t", model_version="m"))
    v3["v"] = "3"
    del v3["webhook"], v3["webhook_events_filter"]
    event = decode(v3)
    assert isinstance(event, JobRequested)
    assert (event.webhook, event.webhook_events_filter) == ("", COMPLETED)


def test_the_message_id_is_stable_per_job_and_trigger():
    assert message_id(JOB, COMPLETED) == message_id(JOB, COMPLETED)
    assert message_id(JOB, COMPLETED) != message_id(JOB, STARTED)
    assert message_id(JOB, COMPLETED) != message_id(JOB.replace("5b", "5c"), COMPLETED)


def test_the_default_schedule_is_the_standard_webhooks_example():
    delays = [next_delay_s(n, jitter=0) for n in range(1, 11)]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400, None]
    assert len(DEFAULT_SCHEDULE_S) == 9  # ten attempts: the first immediate


def test_jitter_moves_a_delay_by_at_most_its_fraction_either_way():
    assert next_delay_s(2, jitter=0.1, draw=0.0) == pytest.approx(270)
    assert next_delay_s(2, jitter=0.1, draw=0.999999) == pytest.approx(330, rel=1e-5)
    assert next_delay_s(2, jitter=0.1) == 300


def test_a_custom_schedule_ends_where_it_ends():
    assert next_delay_s(1, (0.1, 0.2), jitter=0) == 0.1
    assert next_delay_s(2, (0.1, 0.2), jitter=0) == 0.2
    assert next_delay_s(3, (0.1, 0.2), jitter=0) is None
    with pytest.raises(ValueError):
        next_delay_s(0)


def test_deliveries_leave_the_job_as_it_was_with_one_terminal_outcome():
    request = JobRequested(job_id=JOB, occurred_at=at(0), text="t", model_version="m",
                           webhook=URL)  # fmt: skip
    started = JobStarted(job_id=JOB, occurred_at=at(1), consumer="c", attempt=1)
    succeeded = JobSucceeded(
        job_id=JOB, occurred_at=at(2), consumer="c", attempt=1, label="spam", score=0.9,
        probabilities={"spam": 0.9, "ham": 0.1}, model_version="m", inference_ms=1.0,
    )  # fmt: skip
    running = fold([request, started])[JOB]
    assert fold([request, started, abandoned(1.5)])[JOB] == running
    done = fold([request, started, succeeded])[JOB]
    after = fold([request, started, succeeded, attempted(3), delivered(4), abandoned(5)])[JOB]
    assert after == done
    assert after.status is JobStatus.SUCCEEDED and after.updated_at == at(2)


def test_a_delivery_of_a_job_not_known_makes_no_job():
    assert fold([delivered(1), abandoned(2)]) == {}
