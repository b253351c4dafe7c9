"""W3C traceparent handling and its optional place in JobRequested."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.events import JobRequested, decode, encode
from runtime import tracing

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_kept_and_its_trace_id_read():
    assert tracing.accept(VALID) == VALID
    assert tracing.trace_id(VALID) == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_invalid_or_missing_traceparents_start_a_new_trace():
    for header in (None, "", "garbage", VALID.upper(), "00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
        fresh = tracing.accept(header)
        assert tracing.is_valid(fresh) and fresh != header
    assert tracing.trace_id("") == ""


def test_job_requested_carries_the_traceparent_and_reads_events_without_one():
    event = JobRequested(
        job_id="j", occurred_at=datetime(2026, 1, 1, tzinfo=UTC), text="t", model_version="m"
    )
    traced = JobRequested(**{**_fields(event), "traceparent": VALID})
    assert decode(encode(traced)) == traced
    old = {k: v for k, v in encode(event).items() if k != "traceparent"}
    assert decode(old) == event and event.traceparent == ""


def _fields(event: JobRequested) -> dict:
    return {k: getattr(event, k) for k in ("job_id", "occurred_at", "text", "model_version")}
