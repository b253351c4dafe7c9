"""The shadow table a rebuild folds into, and the atomic swap that puts it in place of `jobs`.

The shadow is `CREATE TABLE ... (LIKE jobs INCLUDING ALL)`, so it follows whatever migrations
did to `jobs`. PostgreSQL names the copied indexes its own way, after the shadow and their
columns (`jobs_rebuild_pkey`, `jobs_rebuild_tenant_created_at_job_id_idx`), not after the
originals; the swap matches each to the original by its definition and gives it the original's
name, so that afterwards `jobs` has exactly the indexes, by name, it had before. The old table is
dropped in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, MetaData, text

from readmodel.tables import jobs

LIVE = "jobs"
SHADOW = "jobs_rebuild"
OLD = "jobs_old"

# The shadow as SQLAlchemy sees it: same columns, another name. Never created from here.
jobs_rebuild = jobs.to_metadata(MetaData(), name=SHADOW)


def exists(conn: Connection, table: str) -> bool:
    return bool(conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}).scalar())


def create(conn: Connection) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {SHADOW}"))
    conn.execute(text(f"CREATE TABLE {SHADOW} (LIKE {LIVE} INCLUDING ALL)"))


def drop(conn: Connection) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {SHADOW}"))


def index_names(conn: Connection, table: str) -> set[str]:
    return set(_indexes(conn, table).values())


def _indexes(conn: Connection, table: str) -> dict[str, str]:
    """The table's indexes: definition (with neither the index's nor the table's name) -> name."""
    query = text(
        "SELECT indexname, indexdef FROM pg_indexes"
        " WHERE schemaname = current_schema() AND tablename = :t"
    )
    found: dict[str, str] = {}
    for name, definition in conn.execute(query, {"t": table}):
        # "CREATE [UNIQUE] INDEX <name> ON <schema>.<table> USING ...": the rest is the index.
        head, _, using = definition.partition(" USING ")
        found[head.split(" INDEX ")[0] + " USING " + using] = name
    return found


def _rename(conn: Connection, name: str, to: str) -> None:
    conn.execute(text(f'ALTER INDEX "{name}" RENAME TO "{to}"'))


class SwapError(RuntimeError):
    """The swapped table would not look like the one it replaces; nothing was changed."""


def swap(conn: Connection, lock_timeout_ms: int) -> None:
    """Put the shadow in place of `jobs`, inside the caller's transaction."""
    # ALTER TABLE waits for readers and makes new readers queue behind it: bound that wait.
    conn.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'"))
    before = _indexes(conn, LIVE)
    conn.execute(text(f"ALTER TABLE {LIVE} RENAME TO {OLD}"))
    # Out of the way of the names the rebuilt table's indexes take; dropped with the table.
    for number, name in enumerate(sorted(before.values())):
        _rename(conn, name, f"{OLD}_index_{number}")
    conn.execute(text(f"ALTER TABLE {SHADOW} RENAME TO {LIVE}"))
    rebuilt = _indexes(conn, LIVE)
    if rebuilt.keys() != before.keys():
        raise SwapError(f"rebuilt table would have indexes {sorted(rebuilt)}, not {sorted(before)}")
    for definition, name in rebuilt.items():
        _rename(conn, name, before[definition])
    conn.execute(text(f"DROP TABLE {OLD}"))
