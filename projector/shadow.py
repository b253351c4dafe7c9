"""The shadow table a rebuild folds into, and the atomic swap that puts it in place of `jobs`.

The shadow is `CREATE TABLE ... (LIKE jobs INCLUDING ALL)`, so it follows whatever migrations
did to `jobs`. PostgreSQL names its copied indexes after the shadow (`jobs_rebuild_pkey`,
`jobs_rebuild_status_idx`); the swap renames tables and indexes so that afterwards `jobs` has
exactly the index names it had before, and the old table is dropped in the same transaction.
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
    query = text(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = :t"
    )
    return set(conn.execute(query, {"t": table}).scalars())


def _rename_indexes(conn: Connection, table: str, old_prefix: str, new_prefix: str) -> None:
    for name in sorted(index_names(conn, table)):
        if name.startswith(old_prefix + "_"):
            renamed = new_prefix + name[len(old_prefix) :]
            conn.execute(text(f'ALTER INDEX "{name}" RENAME TO "{renamed}"'))


class SwapError(RuntimeError):
    """The swapped table would not look like the one it replaces; nothing was changed."""


def swap(conn: Connection, lock_timeout_ms: int) -> None:
    """Put the shadow in place of `jobs`, inside the caller's transaction."""
    # ALTER TABLE waits for readers and makes new readers queue behind it: bound that wait.
    conn.execute(text(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'"))
    before = index_names(conn, LIVE)
    conn.execute(text(f"ALTER TABLE {LIVE} RENAME TO {OLD}"))
    _rename_indexes(conn, OLD, LIVE, OLD)
    conn.execute(text(f"ALTER TABLE {SHADOW} RENAME TO {LIVE}"))
    _rename_indexes(conn, LIVE, SHADOW, LIVE)
    after = index_names(conn, LIVE)
    if after != before:
        raise SwapError(f"rebuilt table would have indexes {sorted(after)}, not {sorted(before)}")
    conn.execute(text(f"DROP TABLE {OLD}"))
