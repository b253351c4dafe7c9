"""The job events and their encoding as flat Redis stream fields.

Every event is frozen and past tense. On the wire an event is a flat mapping of strings that reads
well in `redis-cli XRANGE`: `type`, `v` (schema version), `job_id`, `occurred_at` (ISO 8601 UTC),
then the event's own fields. Only nested values (class probabilities) are JSON.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, get_type_hints

from domain.errors import InvalidEventError
from domain.event import Event
from domain.lanes import INTERACTIVE
from domain.tenants import DEFAULT_TENANT
from domain.upcasting import register, upcast
from domain.webhooks import (
    COMPLETED,
    WebhookAbandoned,
    WebhookAttempted,
    WebhookDelivered,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRequested(Event):
    """A client's request was accepted; the job exists from here on.

    v2 added `tenant` and `lane`; v1 entries read as the default tenant's, interactive. v3 added
    `batch_id`, `custom_id` and `deadline`; v2 entries read as jobs of no batch, without one.
    v4 added `webhook` and `webhook_events_filter`; v3 entries read as jobs without a webhook."""

    schema_version: ClassVar[int] = 4

    text: str
    model_version: str
    # W3C trace context of the submitting request; "" in events written before it existed.
    traceparent: str = ""
    tenant: str = DEFAULT_TENANT
    # domain.lanes: "interactive" (submitted alone) or "bulk" (an item of a batch).
    lane: str = INTERACTIVE
    # The batch the job was submitted in, and the client's name for it there; "" for none.
    batch_id: str = ""
    custom_id: str = ""
    # When the job is cancelled unless it has ended (Cancel-After); None: never.
    deadline: datetime | None = None
    # Where the job's webhooks go ("" for none), and for which of domain.webhooks.TRIGGERS,
    # comma-separated (domain.webhooks.format_filter).
    webhook: str = ""
    webhook_events_filter: str = COMPLETED


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStarted(Event):
    """A consumer took the job and began inference."""

    consumer: str
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobRetrying(Event):
    """An attempt failed transiently; another follows after `delay_ms`."""

    consumer: str
    attempt: int
    error_type: str
    error: str
    delay_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSucceeded(Event):
    """Inference produced a label. Terminal."""

    consumer: str
    attempt: int
    label: str
    score: float
    probabilities: dict[str, float] = field(default_factory=dict)
    model_version: str
    inference_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class JobFailed(Event):
    """The job will not produce a label. Terminal."""

    consumer: str
    attempt: int
    error_type: str
    error: str
    transient: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class JobCancelled(Event):
    """The job was stopped before it produced a result. Terminal. `reason` is a
    domain.cancellation.CancelReason; `by` names who decided it (the API, or a consumer)."""

    reason: str
    by: str


def _tenant_of_v1(fields: Mapping[str, str]) -> dict[str, str]:
    # Jobs accepted before tenants and lanes existed were the one (default) tenant's, all in
    # one queue: the interactive lane's.
    return {**fields, "tenant": DEFAULT_TENANT, "lane": INTERACTIVE}


def _batch_of_v2(fields: Mapping[str, str]) -> dict[str, str]:
    # Jobs accepted before batches were objects belong to none and have no deadline.
    return {**fields, "batch_id": "", "custom_id": "", "deadline": ""}


def _webhook_of_v3(fields: Mapping[str, str]) -> dict[str, str]:
    # Jobs accepted before webhooks existed have none.
    return {**fields, "webhook": "", "webhook_events_filter": COMPLETED}


register("JobRequested", 1, _tenant_of_v1)
register("JobRequested", 2, _batch_of_v2)
register("JobRequested", 3, _webhook_of_v3)


EVENT_TYPES: Mapping[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        JobRequested,
        JobStarted,
        JobRetrying,
        JobSucceeded,
        JobFailed,
        JobCancelled,
        WebhookAttempted,
        WebhookDelivered,
        WebhookAbandoned,
    )
}
TERMINAL_EVENT_TYPES: tuple[type[Event], ...] = (JobSucceeded, JobFailed, JobCancelled)


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_time(raw: str) -> datetime:
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return moment.astimezone(UTC)


def _format_optional_time(moment: datetime | None) -> str:
    return "" if moment is None else _format_time(moment)


def _parse_optional_time(raw: str) -> datetime | None:
    return _parse_time(raw) if raw else None


def _parse_bool(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError(f"not a boolean: {raw!r}")
    return raw == "true"


def _parse_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {raw!r}")
    return value


def _parse_probabilities(raw: str) -> dict[str, float]:
    loaded = json.loads(raw)
    if not isinstance(loaded, dict):
        raise ValueError("probabilities must be a JSON object")
    return {str(label): float(p) for label, p in loaded.items()}


def _format_probabilities(value: dict[str, float]) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _format_bool(value: bool) -> str:
    return "true" if value else "false"


_ENCODERS: Mapping[Any, Callable[[Any], str]] = {
    str: str,
    int: str,
    float: repr,
    bool: _format_bool,
    datetime: _format_time,
    datetime | None: _format_optional_time,
    dict[str, float]: _format_probabilities,
}
_DECODERS: Mapping[Any, Callable[[str], Any]] = {
    str: str,
    int: int,
    float: _parse_float,
    bool: _parse_bool,
    datetime: _parse_time,
    datetime | None: _parse_optional_time,
    dict[str, float]: _parse_probabilities,
}


def _field_types(cls: type[Event]) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_FIELD_TYPES: Mapping[type[Event], dict[str, Any]] = {
    cls: _field_types(cls) for cls in EVENT_TYPES.values()
}


# Fields with a plain default may be missing on the wire (added after events were written).
_OPTIONAL_FIELDS: Mapping[type[Event], frozenset[str]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING)
    for cls in EVENT_TYPES.values()
}


# Per event type, in field order: the name, its parser, and whether it may be missing.
_FIELD_DECODERS: Mapping[type[Event], tuple[tuple[str, Callable[[str], Any], bool], ...]] = {
    cls: tuple(
        (name, _DECODERS[kind], name in _OPTIONAL_FIELDS[cls])
        for name, kind in _FIELD_TYPES[cls].items()
    )
    for cls in EVENT_TYPES.values()
}
_CURRENT_VERSION: Mapping[type[Event], str] = {
    cls: str(cls.schema_version) for cls in EVENT_TYPES.values()
}


def encode(event: Event) -> dict[str, str]:
    """The event as flat string fields, in a stable order."""
    cls = type(event)
    fields = {"type": cls.__name__, "v": str(cls.schema_version)}
    for name, kind in _FIELD_TYPES[cls].items():
        fields[name] = _ENCODERS[kind](getattr(event, name))
    return fields


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def decode(raw: Mapping[str, str] | Mapping[bytes, bytes]) -> Event:
    """The event that `encode` wrote, upcast to the current version; `InvalidEventError` for
    anything else."""
    fields = _as_text(raw)
    cls = EVENT_TYPES.get(fields.get("type", ""))
    if cls is None:
        raise InvalidEventError(f"unknown event type {fields.get('type')!r}")
    if fields.get("v") != _CURRENT_VERSION[cls]:
        fields = upcast(fields, cls.__name__, cls.schema_version)
    values: dict[str, Any] = {}
    for name, parse, optional in _FIELD_DECODERS[cls]:
        value = fields.get(name)
        if value is None:
            if optional:
                continue  # an optional field added later: older events lack it
            raise InvalidEventError(f"{cls.__name__} lacks field {name!r}")
        try:
            values[name] = parse(value)
        except ValueError as exc:
            raise InvalidEventError(f"{cls.__name__}.{name}: {exc}") from exc
    return cls(**values)


def _as_text(raw: Mapping[str, str] | Mapping[bytes, bytes]) -> Mapping[str, str]:
    # Readers with decode_responses hand over text already (a reply is all text or all bytes):
    # the copy is for bytes only.
    if isinstance(next(iter(raw), ""), str):
        return raw  # type: ignore[return-value]
    return {_text(k): _text(v) for k, v in raw.items()}


def is_terminal(event: Event) -> bool:
    return isinstance(event, TERMINAL_EVENT_TYPES)


__all__ = [
    "EVENT_TYPES",
    "Event",
    "JobCancelled",
    "JobFailed",
    "JobRequested",
    "JobRetrying",
    "JobStarted",
    "JobSucceeded",
    "WebhookAbandoned",
    "WebhookAttempted",
    "WebhookDelivered",
    "decode",
    "encode",
    "is_terminal",
]
