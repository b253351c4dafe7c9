"""Webhooks: which of a job's moments a client is told of, the events that record each delivery
attempt, and when a failed delivery is tried again.

A submission names a webhook URL and a filter of triggers: `started` (the job began) and
`completed` (it succeeded, failed or was cancelled; the default). Each (job, trigger) is one
message with one id for all its attempts, so receivers can deduplicate. Every attempt is an
event in the job's lane (WebhookAttempted, then WebhookDelivered or, once the schedule is spent
or the receiver said 410 Gone, WebhookAbandoned): the job's timeline shows its deliveries. They
are no outcome of the job: its fold ignores them (domain.job).

The retry schedule is Standard Webhooks' example: immediately, then 5 s, 5 min, 30 min, 2 h,
5 h, 10 h, 14 h, 20 h and 24 h after the previous attempt, each delay with some jitter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from domain.event import Event

STARTED = "started"
COMPLETED = "completed"
TRIGGERS = (STARTED, COMPLETED)
DEFAULT_FILTER = frozenset((COMPLETED,))

# Seconds before each attempt after the first failed one; the first attempt is immediate.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)
# Each delay is moved by up to this fraction of itself, either way, so that deliveries that
# failed together (a receiver's outage) are not all tried again at one instant.
DEFAULT_JITTER = 0.1


class InvalidFilterError(ValueError):
    """A webhook_events_filter naming something other than the triggers."""


def parse_filter(raw: str | Iterable[str]) -> frozenset[str]:
    """The triggers of a filter, comma-separated or listed; `InvalidFilterError` for an unknown
    one or none at all."""
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    found = frozenset(name.strip() for name in names if name.strip())
    unknown = sorted(found - set(TRIGGERS))
    if unknown:
        raise InvalidFilterError(f"unknown webhook events {unknown}: use {list(TRIGGERS)}")
    if not found:
        raise InvalidFilterError(f"a filter names at least one of {list(TRIGGERS)}")
    return found


def format_filter(triggers: Iterable[str]) -> str:
    """A filter as the log keeps it: its triggers in TRIGGERS' order, comma-separated."""
    wanted = set(triggers)
    return ",".join(trigger for trigger in TRIGGERS if trigger in wanted)


def message_id(job_id: str, trigger: str) -> str:
    """The `webhook-id` of a job's message for `trigger`: the same for every attempt, and for
    the same trigger seen twice (a job's JobStarted written again after a crash)."""
    return f"msg_{job_id}_{trigger}"


def next_delay_s(
    attempts: int,
    schedule: Sequence[float] = DEFAULT_SCHEDULE_S,
    jitter: float = DEFAULT_JITTER,
    draw: float = 0.5,
) -> float | None:
    """Seconds from the `attempts`-th failed attempt to the next one, or None when the schedule
    is spent (the message is abandoned). `draw`, in [0, 1), places the delay within its jitter
    (0.5: none)."""
    if attempts < 1:
        raise ValueError("the delay follows an attempt")
    if attempts > len(schedule):
        return None
    delay = float(schedule[attempts - 1])
    return max(0.0, delay * (1 + jitter * (2 * draw - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEvent(Event):
    """Fields every delivery event carries: the message (its `webhook-id`), its trigger and
    where it goes."""

    schema_version: ClassVar[int] = 1

    webhook_id: str
    trigger: str
    url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookAttempted(WebhookEvent):
    """One delivery attempt was made. `status_code` is the receiver's answer, 0 when there was
    none (`error` says why: a timeout, a refused connection, a refused address)."""

    attempt: int
    status_code: int
    error: str
    duration_ms: float
    # When the next attempt is due; None when there is none (delivered, or abandoned).
    next_attempt_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookDelivered(WebhookEvent):
    """The receiver took the message (a 2xx). Final for the message."""

    attempt: int
    status_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookAbandoned(WebhookEvent):
    """No further attempt will be made: the schedule is spent, or the receiver answered 410
    Gone. Final for the message; it is kept as a dead letter for a redrive."""

    attempts: int
    reason: str


WEBHOOK_EVENT_TYPES: tuple[type[Event], ...] = (
    WebhookAttempted,
    WebhookDelivered,
    WebhookAbandoned,
)
