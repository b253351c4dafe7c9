"""The SQL a projector batch runs.

Rows go to PostgreSQL by COPY into a per-connection temporary stage, then one INSERT ... SELECT
with its ON CONFLICT moves them into the table. Measured on 1,000-row batches, this was 2.5 to 3
times faster than one INSERT over unnested arrays, and faster still than executemany.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import JSONB


def _stage(table: Table) -> sql.Identifier:
    return sql.Identifier(f"{table.name}_stage")


def create_stage(table: Table) -> sql.Composed:
    """A temporary table shaped like `table` for COPY to fill (one per connection)."""
    template = "CREATE TEMP TABLE IF NOT EXISTS {s} (LIKE {t})"
    return sql.SQL(template).format(s=_stage(table), t=sql.Identifier(table.name))


def copy_to_stage(table: Table) -> sql.Composed:
    columns = sql.SQL(", ").join(sql.Identifier(c.name) for c in table.columns)
    return sql.SQL("COPY {s} ({cols}) FROM STDIN").format(s=_stage(table), cols=columns)


def insert_from_stage(table: Table, conflict: str) -> sql.Composed:
    """Moves the staged rows into `table`: the stage is empty again for the next batch, even
    when several batches share one transaction (a rebuild's last ones do)."""
    template = (
        "WITH staged AS (DELETE FROM {s} RETURNING *) INSERT INTO {t} SELECT * FROM staged {c}"
    )
    return sql.SQL(template).format(
        t=sql.Identifier(table.name), s=_stage(table), c=sql.SQL(conflict)
    )


def upsert_from_stage(table: Table, key: str) -> sql.Composed:
    """`insert_from_stage` that replaces the row when `key` is taken."""
    updates = ", ".join(f'"{c.name}" = EXCLUDED."{c.name}"' for c in table.columns if c.name != key)
    return insert_from_stage(table, f'ON CONFLICT ("{key}") DO UPDATE SET {updates}')


def copy_rows(cursor: Any, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """COPY `rows` into the stage of `table` (create it first with `create_stage`)."""
    names = [c.name for c in table.columns]
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSONB)}
    with cursor.copy(copy_to_stage(table)) as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(row[n]) if n in json_columns and row[n] is not None else row[n]
                    for n in names
                ]
            )


def select_by_keys(table: Table, key: str) -> sql.Composed:
    return sql.SQL("SELECT * FROM {t} WHERE {k} = ANY(%s::uuid[])").format(
        t=sql.Identifier(table.name), k=sql.Identifier(key)
    )


ADVANCE_CHECKPOINT = """
UPDATE projector_checkpoints SET last_entry_id = %s, entries_read = %s, updated_at = now()
WHERE name = %s AND last_entry_id = %s AND entries_read = %s
"""

CREATE_CHECKPOINT = """
INSERT INTO projector_checkpoints (name, last_entry_id, entries_read, updated_at)
VALUES (%s, %s, %s, now()) ON CONFLICT (name) DO NOTHING
"""


def driver_connection(conn: Connection) -> psycopg.Connection[Any]:
    """The psycopg connection under a SQLAlchemy one, inside the same transaction."""
    raw = conn.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):
        raise TypeError(f"the projector needs psycopg 3, not {type(raw).__name__}")
    return raw
