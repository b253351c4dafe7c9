"""The projector's reads of job rows keep using the primary key as the table grows.

PostgreSQL caches a generic plan for a prepared statement after a few executions and keeps it
until the table is analyzed. Planned while the table was new, a read by `= ANY($1)` scans the
whole table; a batch then costs time in proportion to the table's size. The test asks the
server, on the projector's own connection, for the plan of every prepared read of `jobs`.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from projector.store import Checkpoint, ProjectionStore
from tests.integration.test_projector import load

GROW = """
INSERT INTO jobs (job_id, status, created_at, updated_at, last_entry_id)
SELECT gen_random_uuid(), 'queued', now(), now(), '0-0' FROM generate_series(1, 20000)
"""


def prepared_plans(engine: Engine) -> dict[str, str]:
    """Each read of `jobs` prepared on the pool's connection (the batches ran one after the
    other, so the pool holds one), with the plan the server would run for it now."""
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT name, statement FROM pg_prepared_statements WHERE statement LIKE :like"),
            {"like": 'SELECT * FROM "jobs"%'},
        ).all()
        plans = {}
        for name, statement in found:
            key = f"{{{uuid.uuid4()}}}" if "ANY" in statement else str(uuid.uuid4())
            plan = conn.exec_driver_sql(f"EXPLAIN EXECUTE {name}('{key}')")
            plans[statement] = "\n".join(row[0] for row in plan)
        return plans


def test_reads_of_one_and_of_many_jobs_use_the_primary_key_after_the_table_grew(
    redis_client, names, engine
):
    load(redis_client, names, 40)
    entries = redis_client.xrange(names.events(0))
    store = ProjectionStore(engine, "jobs")
    checkpoint = Checkpoint()
    # One entry at a time (one job a read), then many (several jobs a read): more batches
    # of each than psycopg's threshold for preparing a statement.
    for batch in [*([e] for e in entries[:12]), *(entries[i : i + 8] for i in range(12, 120, 8))]:
        checkpoint = store.apply(checkpoint, batch)
    with engine.begin() as conn:
        conn.exec_driver_sql(GROW)  # and no ANALYZE, as between two autovacuum runs
    plans = prepared_plans(engine)
    assert plans, "the read of one job is prepared"
    for statement, plan in plans.items():
        assert "jobs_pkey" in plan, statement
