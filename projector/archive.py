"""The `events` archive: writing stream entries to it and reading them back in log order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, literal, select, tuple_

from infra.eventlog import Entry
from infra.schema import events
from projector import statements
from projector.rows import NUL, REPLACEMENT


def position(entry_id: str) -> tuple[int, int]:
    """A stream id as the (ms, seq) pair it is ordered by."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


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
# (projector.rows), so a rebuild from the archive gives the same rows.


def _without_nul(fields: Mapping[str, str]) -> dict[str, str]:
    if NUL not in "".join(fields.values()) and NUL not in "".join(fields):
        return dict(fields)
    return {k.replace(NUL, REPLACEMENT): v.replace(NUL, REPLACEMENT) for k, v in fields.items()}


def archive_row(entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """The entry as written, not upcast: the archive keeps what the log held (NULs aside)."""
    ms, seq = position(entry_id)
    fields = _without_nul(fields)
    return {
        "entry_id": entry_id,
        "entry_ms": ms,
        "entry_seq": seq,
        "job_id": fields.get("job_id"),
        "type": fields.get("type"),
        "schema_version": _version(fields),
        "occurred_at": _occurred_at(fields),
        "fields": fields,
    }


def rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    return [archive_row(entry_id, fields) for entry_id, fields in entries]


_DO_NOTHING = "ON CONFLICT (entry_id) DO NOTHING"
CREATE_STAGE = statements.create_stage(events)
INSERT_STAGED = statements.insert_from_stage(events, _DO_NOTHING)
INSERT_JSON = statements.insert_json(events, _DO_NOTHING)


def write(conn: Connection, entries: Sequence[Entry]) -> None:
    """Archive `entries`; ones already there are left as they are (replays, rebuilds)."""
    with statements.driver_connection(conn).cursor() as cur:
        cur.execute(CREATE_STAGE)
        stage(cur, entries)
        cur.execute(INSERT_STAGED)


def stage(cursor: Any, entries: Sequence[Entry]) -> None:
    """COPY `entries` to the archive's stage (`CREATE_STAGE`); `INSERT_STAGED` moves them in."""
    statements.copy_rows(cursor, events, rows(entries))


def insert(cursor: Any, entries: Sequence[Entry]) -> None:
    """Archive `entries` in one statement and no stage, so that it can go in a pipeline."""
    cursor.execute(INSERT_JSON, (statements.json_rows(rows(entries)),))


_POSITION = tuple_(events.c.entry_ms, events.c.entry_seq)


def _at(entry_id: str) -> ColumnElement[Any]:
    ms, seq = position(entry_id)
    return tuple_(literal(ms), literal(seq))


def read(
    conn: Connection, after: str, until: str | None, before: str | None, count: int
) -> list[Entry]:
    """Up to `count` archived entries after `after`, up to `until` (inclusive) and before
    `before` (exclusive), in log order."""
    query = select(events.c.entry_id, events.c.fields).where(_at(after) < _POSITION)
    if until is not None:
        query = query.where(_at(until) >= _POSITION)
    if before is not None:
        query = query.where(_at(before) > _POSITION)
    query = query.order_by(events.c.entry_ms, events.c.entry_seq).limit(count)
    return [(row.entry_id, dict(row.fields)) for row in conn.execute(query)]


def job_query(job_id: str) -> Select[tuple[str, dict[str, str]]]:
    """Every archived entry of one job, in log order."""
    return (
        select(events.c.entry_id, events.c.fields)
        .where(events.c.job_id == job_id)
        .order_by(events.c.entry_ms, events.c.entry_seq)
    )


def for_job(conn: Connection, job_id: str) -> list[Entry]:
    return [(row.entry_id, dict(row.fields)) for row in conn.execute(job_query(job_id))]
