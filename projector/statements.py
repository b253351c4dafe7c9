"""The SQL a projector batch runs, and the transaction it runs in.

Rows go to PostgreSQL one of two ways. Small batches (the live projector's usual one to three
entries, and anything up to `store.SMALL_BATCH`) go by one INSERT per table whose one parameter
is the rows as a JSON array, which the server expands into records of the table's type, in the
same pipeline as the COMMIT. Large ones go by COPY into a per-connection temporary stage, then
one INSERT ... SELECT with its ON CONFLICT moves them into the table; COPY cannot share a
pipeline, and costs two round trips per table. (The small batches went as one array parameter
per column before, in binary format: psycopg's array dumpers cost about 20 us a column, a third
of a one-entry batch's time; one `json.dumps` of the rows costs a few.)

Statements are rendered to text once: composing them again for every batch was a measurable
part of a small batch's time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import JSONB

from readmodel.checkpoints import LOCK_ORDER
from readmodel.rows import to_json

COMMIT = "COMMIT"

# The live projector's batches commit without waiting for their WAL to reach the disk (about
# 0.1 ms a commit here, on the latency path of every job three times). Safe because the
# projection is derived: a database crash can lose only the last few commits, rows and
# checkpoint together (WAL is replayed in order), and the projector applies those entries
# again from the log. The one reader that must not see an unflushed checkpoint is the trim,
# which deletes log entries below it: it reads the checkpoint with `FLUSH_CHECKPOINT`.
ASYNC_COMMIT = "SET LOCAL synchronous_commit TO off"
SYNC_COMMIT = "SET LOCAL synchronous_commit TO on"

# A write in a transaction that commits synchronously: its commit returns once the WAL is on
# disk up to its own commit record, and so up to every commit before it. The rows of all the
# partition's lanes are locked first in the one order every writer locks them in.
LOCK_CHECKPOINTS = f"""
SELECT 1 FROM projector_checkpoints WHERE name = %s AND partition = %s
ORDER BY {LOCK_ORDER} FOR UPDATE
"""
FLUSH_CHECKPOINTS = """
UPDATE projector_checkpoints SET updated_at = updated_at WHERE name = %s AND partition = %s
RETURNING lane, last_entry_id, entries_read
"""


def _stage(table: Table) -> sql.Identifier:
    return sql.Identifier(f"{table.name}_stage")


def _columns(table: Table) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)


def create_stage(table: Table) -> str:
    """A temporary table shaped like `table` for COPY to fill (one per connection)."""
    template = "CREATE TEMP TABLE IF NOT EXISTS {s} (LIKE {t})"
    return sql.SQL(template).format(s=_stage(table), t=sql.Identifier(table.name)).as_string()


@cache
def copy_to_stage(table: Table) -> str:
    template = sql.SQL("COPY {s} ({cols}) FROM STDIN")
    return template.format(s=_stage(table), cols=_columns(table)).as_string()


def insert_from_stage(table: Table, conflict: str) -> str:
    """Moves the staged rows into `table`: the stage is empty again for the next batch, even
    when several batches share one transaction (a rebuild's last ones do)."""
    template = (
        "WITH staged AS (DELETE FROM {s} RETURNING *) INSERT INTO {t} SELECT * FROM staged {c}"
    )
    return (
        sql.SQL(template)
        .format(t=sql.Identifier(table.name), s=_stage(table), c=sql.SQL(conflict))
        .as_string()
    )


def replace_on(table: Table, key: str) -> str:
    """The ON CONFLICT clause that replaces the row when `key` is taken."""
    updates = ", ".join(f'"{c.name}" = EXCLUDED."{c.name}"' for c in table.columns if c.name != key)
    return f'ON CONFLICT ("{key}") DO UPDATE SET {updates}'


def upsert_from_stage(table: Table, key: str) -> str:
    """`insert_from_stage` that replaces the row when `key` is taken."""
    return insert_from_stage(table, replace_on(table, key))


def insert_json(table: Table, conflict: str) -> str:
    """An INSERT of rows given as one JSON array of objects (see `json_rows`), expanded by the
    server into records of the table's own type: one parameter whatever the row count."""
    template = sql.SQL("INSERT INTO {t} SELECT * FROM jsonb_populate_recordset(NULL::{t}, %s) {c}")
    return template.format(t=sql.Identifier(table.name), c=sql.SQL(conflict)).as_string()


def json_rows(rows: Sequence[Mapping[str, Any]]) -> Jsonb:
    """The parameter of `insert_json`."""
    return Jsonb(rows, dumps=to_json)


@cache
def _json_columns(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSONB))


def copy_rows(cursor: Any, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """COPY `rows` into the stage of `table` (create it first with `create_stage`)."""
    names = [c.name for c in table.columns]
    json_columns = _json_columns(table)
    with cursor.copy(copy_to_stage(table)) as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(row[n]) if n in json_columns and row[n] is not None else row[n]
                    for n in names
                ]
            )


def select_by_keys(table: Table, key: str) -> str:
    template = sql.SQL("SELECT * FROM {t} WHERE {k} = ANY(%s::uuid[])")
    return template.format(t=sql.Identifier(table.name), k=sql.Identifier(key)).as_string()


def select_by_key(table: Table, key: str) -> str:
    template = sql.SQL("SELECT * FROM {t} WHERE {k} = %s::uuid")
    return template.format(t=sql.Identifier(table.name), k=sql.Identifier(key)).as_string()


ADVANCE_CHECKPOINT = """
UPDATE projector_checkpoints SET last_entry_id = %s, entries_read = %s, updated_at = now()
WHERE name = %s AND partition = %s AND lane = %s AND last_entry_id = %s AND entries_read = %s
"""

CREATE_CHECKPOINT = """
INSERT INTO projector_checkpoints (name, partition, lane, last_entry_id, entries_read, updated_at)
VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (name, partition, lane) DO NOTHING
"""


def driver_connection(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy one, inside the same transaction."""
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError(f"the projector needs psycopg 3, not {type(raw).__name__}")
    return raw


def begin(raw: psycopg.Connection[Any]) -> str:
    """The BEGIN psycopg would send for `raw` (the projector's engine sets no read-only or
    deferrable mode, only possibly an isolation level)."""
    level = raw.isolation_level
    if level is None:
        return "BEGIN"
    return f"BEGIN ISOLATION LEVEL {level.name.replace('_', ' ')}"


@contextmanager
def own_transaction(raw: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """`raw` for a block that opens its transaction with `begin(raw)` and closes it with
    `COMMIT`, both as statements of its own pipelines.

    psycopg sends the BEGIN of a transaction it opens by itself, alone, one more round trip;
    in autocommit mode it sends none and the block's own goes in the pipeline of the statements
    after it. Whatever the block leaves open (it raised) is rolled back, and the connection
    goes back to the pool as it came."""
    autocommit = raw.autocommit
    raw.autocommit = True
    try:
        yield raw
    finally:
        if not raw.closed:
            try:
                if raw.info.transaction_status != TransactionStatus.IDLE:
                    raw.rollback()
                raw.autocommit = autocommit
            except BaseException:
                raw.close()  # never back to the pool in autocommit mode: the pool drops it
                raise
