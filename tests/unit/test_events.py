"""Events encode to flat, readable stream fields and decode back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from domain.errors import InvalidEventError
from domain.events import (
    JobFailed,
    JobRequested,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    decode,
    encode,
    is_terminal,
)

AT = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
JOB = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

EXAMPLES = [
    JobRequested(job_id=JOB, occurred_at=AT, text="win a prize ☃ now", model_version="m1"),
    JobStarted(job_id=JOB, occurred_at=AT, consumer="c-1", attempt=1),
    JobRetrying(
        job_id=JOB,
        occurred_at=AT,
        consumer="c-1",
        attempt=1,
        error_type="TransientInferenceError",
        error="boom",
        delay_ms=120,
    ),
    JobSucceeded(
        job_id=JOB,
        occurred_at=AT,
        consumer="c-1",
        attempt=2,
        label="spam",
        score=0.97,
        probabilities={"spam": 0.97, "ham": 0.03},
        model_version="m1",
        inference_ms=1.25,
    ),
    JobFailed(
        job_id=JOB,
        occurred_at=AT,
        consumer="c-1",
        attempt=3,
        error_type="InferenceTimeoutError",
        error="inference timed out after 50 ms",
        transient=False,
    ),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip(event):
    fields = encode(event)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())
    assert decode(fields) == event
    assert decode({k.encode(): v.encode() for k, v in fields.items()}) == event


def test_fields_are_flat_and_readable():
    fields = encode(EXAMPLES[3])
    assert fields["type"] == "JobSucceeded"
    assert fields["v"] == "1"
    assert fields["occurred_at"] == "2026-11-28T12:00:00.123456Z"
    assert fields["label"] == "spam"
    assert fields["score"] == "0.97"
    assert fields["probabilities"] == '{"ham":0.03,"spam":0.97}'
    assert list(fields)[:4] == ["type", "v", "job_id", "occurred_at"]


def test_booleans_are_words():
    assert encode(EXAMPLES[4])["transient"] == "false"


def test_times_are_normalised_to_utc():
    local = AT.astimezone(timezone(timedelta(hours=5)))
    event = JobStarted(job_id=JOB, occurred_at=local, consumer="c", attempt=1)
    assert encode(event)["occurred_at"].endswith("Z")
    assert decode(encode(event)).occurred_at == AT


def test_events_are_frozen():
    with pytest.raises(AttributeError):
        EXAMPLES[0].text = "changed"  # type: ignore[misc]


def test_terminal_events():
    assert [is_terminal(e) for e in EXAMPLES] == [False, False, False, True, True]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "JobExploded"}, "unknown event type"),
        ({"v": "99"}, "unsupported schema version"),
        ({"attempt": "one"}, "attempt"),
        ({"score": "nan"}, "score"),
        ({"transient": "maybe"}, "transient"),
        ({"occurred_at": "2026-11-28T12:00:00"}, "occurred_at"),
        ({"probabilities": "[1, 2]"}, "probabilities"),
    ],
)
def test_bad_fields_are_refused(change, message):
    base = EXAMPLES[3] if "score" in change or "probabilities" in change else EXAMPLES[4]
    fields = {**encode(base), **change}
    with pytest.raises(InvalidEventError, match=message):
        decode(fields)


def test_missing_field_is_refused():
    fields = encode(EXAMPLES[0])
    del fields["text"]
    with pytest.raises(InvalidEventError, match="lacks field 'text'"):
        decode(fields)
