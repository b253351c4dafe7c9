"""Writing stream entries to the `events` archive (readmodel.archive), inside a batch's
transaction: staged for COPY in large batches, one JSON document in small ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from eventlog.entries import Entry
from eventlog.lanes import DEFAULT_LANE, Lane
from projector import statements
from readmodel import archive
from readmodel.tables import events

# Entry ids are unique within one lane's stream of one partition.
_DO_NOTHING = "ON CONFLICT (partition, lane, entry_id) DO NOTHING"
CREATE_STAGE = statements.create_stage(events)
INSERT_STAGED = statements.insert_from_stage(events, _DO_NOTHING)
INSERT_JSON = statements.insert_json(events, _DO_NOTHING)

Row = Mapping[str, Any]


def write(
    conn: Connection, partition: int, entries: Sequence[Entry], lane: Lane = DEFAULT_LANE
) -> None:
    """Archive `entries` of a lane of `partition`; ones already there are left as they are
    (replays, rebuilds)."""
    with statements.driver_connection(conn).cursor() as cur:
        cur.execute(CREATE_STAGE)
        stage(cur, archive.rows(partition, entries, lane))
        cur.execute(INSERT_STAGED)


def stage(cursor: Any, rows: Sequence[Row]) -> None:
    """COPY archive rows (readmodel.archive.rows) to the archive's stage (`CREATE_STAGE`);
    `INSERT_STAGED` moves them in."""
    statements.copy_rows(cursor, events, rows)


def insert(cursor: Any, rows: Sequence[Row]) -> None:
    """Archive rows (readmodel.archive.rows) in one statement and no stage, so that it can go
    in a pipeline."""
    cursor.execute(INSERT_JSON, (statements.json_rows(rows),))
