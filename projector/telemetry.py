"""What the projector reports about each batch it applies: metrics and debug log lines."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from domain.events import Event, JobRequested, is_terminal
from domain.lanes import BULK, INTERACTIVE
from eventlog.lanes import Lane
from eventlog.positions import entry_ms
from projector import metrics
from projector.store import LaneBatch
from readmodel.checkpoints import Checkpoint
from runtime import spans
from runtime.tracing import trace_id

log = logging.getLogger(__name__)

# Terminal events older than this are being replayed (a rebuild, a projector catching up after
# an outage), not finishing now: their end-to-end time says nothing about the live service.
LIVE_WINDOW_S = 300.0
# With spans on: the traceparents of jobs requested but not finished yet, so the span of a
# terminal event can join the job's trace. Bounded: a job older than that gets no such span.
TRACEPARENTS_KEPT = 10_000
_traceparents: OrderedDict[str, str] = OrderedDict()
# One projector thread per partition: the bounded pop-oldest loop must not interleave.
_traceparents_lock = threading.Lock()


# The newest entry projected of each partition's lanes of each kind (Unix ms): checkpoints only
# move on, so the newest of a kind's lanes is the newest ever applied. Each partition's thread
# writes its own keys.
_newest_ms: dict[tuple[int, str], int] = {}


def batch_applied(
    partition: int,
    batches: Sequence[LaneBatch],
    positions: Mapping[Lane, Checkpoint],
    seconds: float,
) -> None:
    """Report a batch of `partition` (entries of one or more lanes, applied together in
    `seconds`), after which its lanes stand at `positions`, a mapping the caller never changes
    (the metrics' scrapes read it). Labels are the partition and the kind of lane, never the
    tenant: their number stays bounded."""
    if not any(batch.entries for batch in batches):
        return
    part = str(partition)
    applied: dict[str, int] = {}
    for batch in batches:
        applied[batch.lane.kind] = applied.get(batch.lane.kind, 0) + len(batch.entries)
    for kind, count in applied.items():
        metrics.EVENTS_APPLIED.labels(part, kind).inc(count)
    # The interactive batches are the latency path: a batch with any of them counts as one.
    kind = INTERACTIVE if INTERACTIVE in applied else BULK
    metrics.APPLY_SECONDS.labels(part, kind).observe(seconds)
    for batch in batches:
        if batch.entries:
            key = (partition, batch.lane.kind)
            at_ms = entry_ms(batch.entries[-1][0])
            if at_ms > _newest_ms.get(key, -1):
                _newest_ms[key] = at_ms
                metrics.CHECKPOINT.labels(part, batch.lane.kind).set(at_ms / 1000)
    # A partition's lanes are served by two threads, each `positions` holding its own lanes.
    metrics.POSITIONS[partition] = {**metrics.POSITIONS.get(partition, {}), **positions}
    now = datetime.now(UTC)
    traced = spans.enabled()
    logged = log.isEnabledFor(logging.DEBUG)
    if traced:
        end_ns = time.time_ns()
        start_ns = end_ns - round(seconds * 1e9)
    for batch in batches:
        for entry_id, event in batch.decoded():
            _observe_end_to_end(event, now)
            if logged:
                _log_event(entry_id, event, batch.lane)
            if traced:
                _trace(entry_id, event, start_ns, end_ns)
    log.debug(
        "batch applied",
        extra={
            "entries": sum(applied.values()),
            "lanes": len(batches),
            "duration_ms": round(seconds * 1000, 3),
        },
    )


_OUTCOMES = {"JobSucceeded": "succeeded", "JobFailed": "failed", "JobCancelled": "cancelled"}


def _observe_end_to_end(event: Event, now: datetime) -> None:
    if not is_terminal(event) or (now - event.occurred_at).total_seconds() > LIVE_WINDOW_S:
        return
    job = uuid.UUID(event.job_id)  # the store has skipped entries whose id is not a UUID
    if job.version not in (7, 8):
        return
    # A job id's first 48 bits are the Unix milliseconds at which the API accepted the job
    # (domain.ids; version 7 from before partitions).
    created_ms = job.int >> 80
    took_s = event.occurred_at.timestamp() - created_ms / 1000
    outcome = _OUTCOMES.get(type(event).__name__, "failed")
    metrics.END_TO_END_SECONDS.labels(outcome).observe(max(took_s, 0.0))


def _log_event(entry_id: str, event: Event, lane: Lane) -> None:
    extra = {
        "job_id": event.job_id,
        "event": type(event).__name__,
        "entry_id": entry_id,
        "lane": lane.name,
    }
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
            with _traceparents_lock:
                _traceparents[event.job_id] = traceparent
                while len(_traceparents) > TRACEPARENTS_KEPT:
                    _traceparents.popitem(last=False)
    elif is_terminal(event):
        with _traceparents_lock:
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
