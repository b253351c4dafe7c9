"""One job's events as a timeline: archived entries merged with those still only in the stream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from domain.errors import InferFlowError
from domain.events import Event, decode
from infra.eventlog import Entry
from projector.archive import position

_COMMON = ("job_id", "occurred_at", "consumer", "attempt")


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    entry_id: str
    type: str
    schema_version: int
    occurred_at: datetime
    consumer: str | None
    attempt: int | None
    payload: dict[str, Any]


def merge(*sources: Iterable[Entry]) -> list[Entry]:
    """The entries of all sources once each, in log order (an entry can be in both the archive
    and the stream)."""
    unique = {entry_id: entry_fields for source in sources for entry_id, entry_fields in source}
    return sorted(unique.items(), key=lambda entry: position(entry[0]))


def _payload(event: Event) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in fields(event) if f.name not in _COMMON}


def view(entry_id: str, entry_fields: dict[str, str]) -> TimelineEvent | None:
    """The entry as a timeline event (upcast to the current version); None when unreadable."""
    try:
        event = decode(entry_fields)
    except InferFlowError:
        return None
    return TimelineEvent(
        entry_id=entry_id,
        type=type(event).__name__,
        schema_version=type(event).schema_version,
        occurred_at=event.occurred_at,
        consumer=getattr(event, "consumer", None),
        attempt=getattr(event, "attempt", None),
        payload=_payload(event),
    )


def timeline(entries: Iterable[Entry], job_id: str) -> list[TimelineEvent]:
    """The readable events of `job_id` among `entries`, in their order."""
    out = []
    for entry_id, entry_fields in entries:
        if entry_fields.get("job_id") != job_id:
            continue
        event = view(entry_id, entry_fields)
        if event is not None:
            out.append(event)
    return out
