"""The `events` archive: how a stream entry becomes a row, and reading entries back in log order.

The projector writes every entry it reads to the archive in the same transaction as the rows it
folds into (projector.archiver), so the Redis stream can be trimmed without losing history. An
entry is archived with its partition and lane (eventlog.lanes): its id is unique within that
lane's stream only, and "log order" is the order of one lane.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, literal, select, tuple_

from eventlog.entries import Entry
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.positions import position
from readmodel.rows import NUL, REPLACEMENT
from readmodel.tables import events


def _version(fields: Mapping[str, str]) -> int | None:
    raw = fields.get("v", "")
    return int(raw) if raw.isdigit() else None


def _occurred_at(fields: Mapping[str, str]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(fields.get("occurred_at", "").replace("Z", "+00:00"))
    except ValueError:
        return None  # kept anyway: the archive holds what the log held, valid or not
    return moment.astimezone(UTC) if moment.tzinfo else None


# PostgreSQL can hold U+0000 neither in text nor in jsonb (UntranslatableCharacter), and the
# log can: Redis strings are binary-safe, and nothing stops a submitted text containing a NUL.
# Archived as it was, such an entry would fail its batch again on every retry and stop the
# projector for good. Its NULs are archived as U+FFFD (the replacement character) instead: the
# one place where the archive differs from the log. Rows store such NULs the same way
# (readmodel.rows), so a rebuild from the archive gives the same rows.


def _without_nul(fields: Mapping[str, str]) -> dict[str, str]:
    if NUL not in "".join(fields.values()) and NUL not in "".join(fields):
        return dict(fields)
    return {k.replace(NUL, REPLACEMENT): v.replace(NUL, REPLACEMENT) for k, v in fields.items()}


def archive_row(
    partition: int, entry_id: str, fields: Mapping[str, str], lane: Lane = DEFAULT_LANE
) -> dict[str, Any]:
    """The entry as written, not upcast: the archive keeps what the log held (NULs aside)."""
    ms, seq = position(entry_id)
    fields = _without_nul(fields)
    return {
        "partition": partition,
        "lane": lane.name,
        "entry_id": entry_id,
        "entry_ms": ms,
        "entry_seq": seq,
        "job_id": fields.get("job_id"),
        "type": fields.get("type"),
        "schema_version": _version(fields),
        "occurred_at": _occurred_at(fields),
        "fields": fields,
    }


def rows(
    partition: int, entries: Sequence[Entry], lane: Lane = DEFAULT_LANE
) -> list[dict[str, Any]]:
    return [archive_row(partition, entry_id, fields, lane) for entry_id, fields in entries]


_POSITION = tuple_(events.c.entry_ms, events.c.entry_seq)


def _at(entry_id: str) -> ColumnElement[Any]:
    ms, seq = position(entry_id)
    return tuple_(literal(ms), literal(seq))


def read(
    conn: Connection,
    partition: int,
    after: str,
    until: str | None,
    before: str | None,
    count: int,
    lane: Lane = DEFAULT_LANE,
) -> list[Entry]:
    """Up to `count` archived entries of a lane of `partition` after `after`, up to `until`
    (inclusive) and before `before` (exclusive), in the lane's order."""
    query = select(events.c.entry_id, events.c.fields).where(
        events.c.partition == partition, events.c.lane == lane.name, _at(after) < _POSITION
    )
    if until is not None:
        query = query.where(_at(until) >= _POSITION)
    if before is not None:
        query = query.where(_at(before) > _POSITION)
    query = query.order_by(events.c.entry_ms, events.c.entry_seq).limit(count)
    return [(row.entry_id, dict(row.fields)) for row in conn.execute(query)]


def job_query(job_id: str) -> Select[tuple[str, dict[str, str]]]:
    """Every archived entry of one job, in log order (a job's entries are all in one lane of
    its partition)."""
    return (
        select(events.c.entry_id, events.c.fields)
        .where(events.c.job_id == job_id)
        .order_by(events.c.entry_ms, events.c.entry_seq)
    )


def for_job(conn: Connection, job_id: str) -> list[Entry]:
    return [(row.entry_id, dict(row.fields)) for row in conn.execute(job_query(job_id))]
