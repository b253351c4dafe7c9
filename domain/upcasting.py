"""Upcasters: old schema versions of an event turned into the current one when read.

Events in the log are never rewritten, so a change to an event's fields bumps its type's
`schema_version` and registers an upcaster from the previous version. Decoding applies the chain
of upcasters (v0 -> v1 -> ... -> current) to the flat wire fields before checking them, so the
rest of the code only ever sees current events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from domain.errors import InvalidEventError

Fields = dict[str, str]
Upcaster = Callable[[Mapping[str, str]], Fields]

# (event type, version it reads) -> function returning the fields of the next version.
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def register(event_type: str, from_version: int, upcaster: Upcaster) -> None:
    """Make `upcaster` turn `event_type` fields of `from_version` into `from_version + 1`."""
    key = (event_type, from_version)
    if key in _UPCASTERS:
        raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
    _UPCASTERS[key] = upcaster


def unregister(event_type: str, from_version: int) -> None:
    _UPCASTERS.pop((event_type, from_version), None)


@contextmanager
def registered(event_type: str, from_version: int, upcaster: Upcaster) -> Iterator[None]:
    """An upcaster present only inside the block (tests, one-off migrations)."""
    register(event_type, from_version, upcaster)
    try:
        yield
    finally:
        unregister(event_type, from_version)


def _version(fields: Mapping[str, str], event_type: str) -> int:
    raw = fields.get("v")
    # Only the canonical form, as encode writes it: "1", never "01" or " 1".
    if raw is None or not raw.isascii() or not raw.isdigit() or str(int(raw)) != raw:
        raise InvalidEventError(f"{event_type} has unsupported schema version {raw!r}")
    return int(raw)


def upcast(fields: Mapping[str, str], event_type: str, current: int) -> Fields:
    """`fields` at version `current`; `InvalidEventError` when no chain of upcasters leads there."""
    version = _version(fields, event_type)
    out = dict(fields)
    while version < current:
        upcaster = _UPCASTERS.get((event_type, version))
        if upcaster is None:
            raise InvalidEventError(f"{event_type} has unsupported schema version {str(version)!r}")
        out = {**upcaster(out), "v": str(version + 1)}
        version += 1
    if version != current:
        raise InvalidEventError(f"{event_type} has unsupported schema version {fields.get('v')!r}")
    return out
