"""What the projector reports about each batch it applies: metrics and debug log lines."""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime

from domain.events import Event, JobRequested, is_terminal
from infra import spans
from infra.eventlog import Entry
from infra.streamstats import entry_ms
from infra.tracing import trace_id
from projector import metrics
from projector.store import Checkpoint, decode_entries

log = logging.getLogger(__name__)

# Terminal events older than this are being replayed (a rebuild, a projector catching up after
# an outage), not finishing now: their end-to-end time says nothing about the live service.
LIVE_WINDOW_S = 300.0
# With spans on: the traceparents of jobs requested but not finished yet, so the span of a
# terminal event can join the job's trace. Bounded: a job older than that gets no such span.
TRACEPARENTS_KEPT = 10_000
_traceparents: OrderedDict[str, str] = OrderedDict()


def batch_applied(
    entries: Sequence[Entry],
    after: Checkpoint,
    seconds: float,
    events: Sequence[tuple[str, Event]] | None = None,
) -> None:
    """Report a batch; `events` are its entries decoded (by the store), to save a decode."""
    if not entries:
        return
    metrics.EVENTS_APPLIED.inc(len(entries))
    metrics.APPLY_SECONDS.observe(seconds)
    metrics.CHECKPOINT.set(entry_ms(after.last_entry_id) / 1000)
    metrics.POSITION.last_entry_id = after.last_entry_id
    metrics.POSITION.entries_read = after.entries_read
    now = datetime.now(UTC)
    traced = spans.enabled()
    logged = log.isEnabledFor(logging.DEBUG)
    if traced:
        end_ns = time.time_ns()
        start_ns = end_ns - round(seconds * 1e9)
    for entry_id, event in decode_entries(entries) if events is None else events:
        _observe_end_to_end(event, now)
        if logged:
            _log_event(entry_id, event)
        if traced:
            _trace(entry_id, event, start_ns, end_ns)
    log.debug(
        "batch applied",
        extra={"entries": len(entries), "duration_ms": round(seconds * 1000, 3)},
    )


def _observe_end_to_end(event: Event, now: datetime) -> None:
    if not is_terminal(event) or (now - event.occurred_at).total_seconds() > LIVE_WINDOW_S:
        return
    job = uuid.UUID(event.job_id)  # the store has skipped entries whose id is not a UUID
    if job.version != 7:
        return
    # A UUIDv7's first 48 bits are the Unix milliseconds at which the API accepted the job.
    created_ms = job.int >> 80
    took_s = event.occurred_at.timestamp() - created_ms / 1000
    outcome = "succeeded" if type(event).__name__ == "JobSucceeded" else "failed"
    metrics.END_TO_END_SECONDS.labels(outcome).observe(max(took_s, 0.0))


def _log_event(entry_id: str, event: Event) -> None:
    extra = {"job_id": event.job_id, "event": type(event).__name__, "entry_id": entry_id}
    for name in ("consumer", "attempt"):
        if hasattr(event, name):
            extra[name] = getattr(event, name)
    if isinstance(event, JobRequested) and event.traceparent:
        extra["trace_id"] = trace_id(event.traceparent)
    log.debug("event projected", extra=extra)


def _trace(entry_id: str, event: Event, start_ns: int, end_ns: int) -> None:
    """A span `inferflow.project` (the batch that applied it) for a job's request and outcome."""
    if isinstance(event, JobRequested):
        traceparent = event.traceparent
        if traceparent:
            _traceparents[event.job_id] = traceparent
            while len(_traceparents) > TRACEPARENTS_KEPT:
                _traceparents.popitem(last=False)
    elif is_terminal(event):
        traceparent = _traceparents.pop(event.job_id, "")
    else:
        return
    if not traceparent:
        return  # no known parent: a root span would only be noise
    spans.record(
        "inferflow.project",
        traceparent,
        start_ns,
        end_ns,
        **{
            "inferflow.job_id": event.job_id,
            "inferflow.event": type(event).__name__,
            "inferflow.entry_id": entry_id,
        },
    )
