"""A projector started before the migration waits for the tables instead of exiting."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import create_engine, text

from devstack import databases
from projector.runner import Projector
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore
from readmodel.migrations import upgrade
from tests.support import submit


def test_a_projector_started_before_the_migration_waits_then_projects(
    postgres_url, redis_url, redis_client, names
):
    name = f"inferflow_unmigrated_{uuid.uuid4().hex[:12]}"
    with databases.admin(postgres_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = databases.database_url(postgres_url, name)
    engine = create_engine(url)
    try:
        job_id = submit(redis_client, names, "the weekly report")
        settings = ProjectorSettings(
            redis_url=redis_url,
            database_url=url,
            stream_prefix=names.prefix,
            read_block_ms=10,
            metrics_port=0,  # the registry is process-wide: another test serves it
        )
        projector = Projector(settings, redis_client, ProjectionStore(engine, "jobs"))
        stop = threading.Event()
        running = threading.Thread(target=projector.run, args=(stop,))
        running.start()
        time.sleep(0.5)
        assert running.is_alive()  # no tables yet: it waits, it does not exit
        upgrade(url)
        deadline = time.monotonic() + 15
        found = None
        while found is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                query = text("SELECT status FROM jobs WHERE job_id = :id")
                found = conn.execute(query, {"id": job_id}).scalar()
            time.sleep(0.05)
        stop.set()
        running.join(10)
        assert found == "queued"
    finally:
        engine.dispose()
        databases.drop_database(postgres_url, name)
