"""The notifier's decisions without servers: the outcome of an attempt, Retry-After, the body
(the job as GET /v1/jobs/{id} renders it) and the signature headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from api.schemas import JobBody
from domain.events import (
    JobCancelled,
    JobFailed,
    JobRequested,
    JobRetrying,
    JobStarted,
    JobSucceeded,
    encode,
)
from domain.job import fold
from domain.webhooks import COMPLETED, message_id
from eventlog.webhooks import ABANDONED, DELIVERED, RETRY, Message
from notifier import body, signing
from notifier.delivery import Answer, retry_after_s
from notifier.dispatcher import decide
from notifier.settings import NotifierSettings

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
JOB = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
SCHEDULE = (5.0, 300.0)


def message(attempts: int = 0) -> Message:
    return Message(
        webhook_id=message_id(JOB, COMPLETED), job_id=JOB, trigger=COMPLETED,
        url="https://example.com/h", tenant="acme", partition=0, lane="interactive:acme",
        body="{}",
        event_ms=0, attempts=attempts,
    )  # fmt: skip


def outcome(answer: Answer, attempts: int = 0):
    return decide(message(attempts), answer, T0, SCHEDULE, 0.0, 0.5)


def test_a_2xx_delivers():
    found = outcome(Answer(204, "", 12.0))
    assert found.kind == DELIVERED and found.attempts == 1
    attempted, delivered = found.events
    assert (type(attempted).__name__, type(delivered).__name__) == (
        "WebhookAttempted", "WebhookDelivered",
    )  # fmt: skip
    assert attempted.next_attempt_at is None and delivered.status_code == 204


@pytest.mark.parametrize("status", [0, 301, 307, 400, 404, 500, 502])
def test_anything_else_is_tried_again_on_the_schedule(status):
    found = outcome(Answer(status, "" if status else "timed out", 1.0), attempts=1)
    assert found.kind == RETRY and found.attempts == 2
    assert found.next_due_ms == int((T0 + timedelta(seconds=300)).timestamp() * 1000)
    assert found.events[0].next_attempt_at == T0 + timedelta(seconds=300)


def test_the_schedule_spent_abandons_with_a_dead_letter():
    found = outcome(Answer(500, "", 1.0), attempts=2)
    assert found.kind == ABANDONED and found.attempts == 3
    assert [type(e).__name__ for e in found.events] == ["WebhookAttempted", "WebhookAbandoned"]
    assert found.letter["webhook_id"] == message().webhook_id and found.letter["reason"]


def test_410_abandons_at_once():
    found = outcome(Answer(410, "", 1.0))
    assert found.kind == ABANDONED and "410" in found.events[1].reason


@pytest.mark.parametrize("status", [429, 503])
def test_429_and_503_wait_for_retry_after(status):
    found = outcome(Answer(status, "", 1.0, retry_after_s=42.0))
    assert found.kind == RETRY
    assert found.events[0].next_attempt_at == T0 + timedelta(seconds=42)
    capped = outcome(Answer(status, "", 1.0, retry_after_s=10 * 86400.0))
    assert capped.events[0].next_attempt_at == T0 + timedelta(days=1)


def test_retry_after_of_another_status_is_not_honoured():
    found = outcome(Answer(500, "", 1.0, retry_after_s=42.0))
    assert found.events[0].next_attempt_at == T0 + timedelta(seconds=5)


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_s("120", T0) == 120.0
    assert retry_after_s("Sat, 28 Nov 2026 12:00:30 GMT", T0) == 30.0
    assert retry_after_s("Sat, 28 Nov 2026 11:00:00 GMT", T0) == 0.0
    assert retry_after_s("soon", T0) is None and retry_after_s(None, T0) is None


def _entries(*events):
    return [(f"{i + 1}-0", encode(event)) for i, event in enumerate(events)]


REQUEST = JobRequested(
    job_id=JOB, occurred_at=T0, text="t", model_version="m1", tenant="acme", batch_id="b1",
    custom_id="c1", deadline=T0 + timedelta(hours=1), webhook="https://example.com/h",
)  # fmt: skip
STARTED = JobStarted(job_id=JOB, occurred_at=T0 + timedelta(seconds=1), consumer="c", attempt=1)
RETRYING = JobRetrying(
    job_id=JOB, occurred_at=T0 + timedelta(seconds=2), consumer="c", attempt=1,
    error_type="Timeout", error="slow", delay_ms=5,
)  # fmt: skip
SUCCEEDED = JobSucceeded(
    job_id=JOB, occurred_at=T0 + timedelta(seconds=3, microseconds=5), consumer="c", attempt=2,
    label="spam", score=0.9778, probabilities={"spam": 0.9778, "ham": 0.0222},
    model_version="m1", inference_ms=1.5,
)  # fmt: skip
FAILED = JobFailed(
    job_id=JOB, occurred_at=T0 + timedelta(seconds=3), consumer="c", attempt=3,
    error_type="Boom", error="no", transient=False,
)  # fmt: skip
CANCELLED = JobCancelled(job_id=JOB, occurred_at=T0 + timedelta(seconds=1), reason="requested",
                         by="api")  # fmt: skip


@pytest.mark.parametrize(
    "events",
    [
        (REQUEST,),
        (REQUEST, STARTED),
        (REQUEST, STARTED, RETRYING, SUCCEEDED),
        (REQUEST, STARTED, FAILED),
        (REQUEST, CANCELLED),
    ],
)
def test_the_body_is_the_job_as_the_api_renders_it(events):
    state = body.state_of(JOB, list(reversed(_entries(*events))))  # any order: log order wins
    assert state == fold(events)[JOB]
    api = JobBody.of(state).model_dump(mode="json")
    assert json.loads(body.render(state)) == api


def test_the_headers_carry_one_signature_per_secret():
    secrets = ["whsec_" + base64.b64encode(bytes([n]) * 32).decode() for n in (1, 2)]
    at = datetime(2026, 11, 28, 12, 0, 0, 900_000, tzinfo=UTC)
    found = signing.headers("msg_1", at, b'{"a":1}', secrets)
    assert found["webhook-id"] == "msg_1" and found["webhook-timestamp"] == str(int(at.timestamp()))
    signed = f"msg_1.{found['webhook-timestamp']}.".encode() + b'{"a":1}'
    expected = [
        "v1," + base64.b64encode(hmac.new(base64.b64decode(s[6:]), signed, hashlib.sha256)
                                 .digest()).decode()
        for s in secrets
    ]  # fmt: skip
    assert found["webhook-signature"].split(" ") == expected


def test_the_default_schedule_and_timeout_are_the_issues():
    settings = NotifierSettings()
    assert settings.schedule_s == (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert settings.webhook_timeout_ms == 15_000
    with pytest.raises(ValueError):
        NotifierSettings(webhook_timeout_ms=5000, webhook_lease_ms=5000)
