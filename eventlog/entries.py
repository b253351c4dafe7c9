"""Stream entries as redis-py gives and takes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.events import Event, encode

Entry = tuple[str, dict[str, str]]


def stream_entries(reply: Any) -> list[Entry]:
    """The entries of an XREAD/XREADGROUP reply (decoded responses), in order."""
    return [entry for _stream, entries in reply or [] for entry in entries]


def entries_by_stream(reply: Any) -> dict[str, list[Entry]]:
    """The entries of an XREAD/XREADGROUP reply over several streams (decoded responses), by
    stream, each stream's in order; streams without entries are left out."""
    return {str(stream): list(entries) for stream, entries in reply or [] if entries}


def range_entries(reply: Any) -> list[Entry]:
    """The entries of an XRANGE reply (decoded responses)."""
    return list(reply or [])


def stream_fields(event: Event) -> dict[Any, Any]:
    """The event's fields typed as redis-py's XADD wants them."""
    return dict(encode(event))


def flat_args(fields: Mapping[str, str]) -> list[str]:
    """Field/value pairs as one flat list of script arguments."""
    return [part for pair in fields.items() for part in pair]
