"""A projector process serving several partitions: one thread each, and a thread that fails
stops the process instead of leaving its partition unprojected; within a partition, the
interactive lanes are projected while a round of the bulk lanes is held up."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import text

from projector import fleet
from projector.errors import PartitionThreadError
from projector.fleet import Fleet
from projector.leases import Leases
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore
from tests.integration.test_lanes_projection import ACME_BULK, ACME_INTERACTIVE, submit_to
from tests.integration.test_projector import expected, load, rows


def settings_for(redis_url, database_url, names, **extra) -> ProjectorSettings:
    return ProjectorSettings(
        redis_url=redis_url,
        database_url=database_url,
        stream_prefix=names.prefix,
        partitions=3,
        read_block_ms=10,
        lease_retry_ms=50,
        metrics_port=0,
        **extra,
    )


def test_one_process_projects_every_partition(redis_url, database_url, names, redis_client, engine):
    load(redis_client, names, 60, partitions=3)
    settings = settings_for(redis_url, database_url, names)
    stop = threading.Event()
    running = Fleet(settings, redis_client, engine, settings.served)
    thread = threading.Thread(target=running.run, args=(stop,))
    thread.start()
    try:
        want = expected(redis_client, names, partitions=3)
        for _ in range(200):
            if rows(engine) == want:
                break
            stop.wait(0.05)
        assert rows(engine) == want
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_failed_partition_thread_stops_the_process(
    redis_url, database_url, names, redis_client, engine, monkeypatch
):
    class Broken(ProjectionStore):
        def checkpoints(self):  # type: ignore[no-untyped-def]
            if self.partition == 1:
                raise RuntimeError("a bug in partition 1")
            return super().checkpoints()

    monkeypatch.setattr(fleet, "ProjectionStore", Broken)
    settings = settings_for(redis_url, database_url, names)
    stop = threading.Event()
    with pytest.raises(PartitionThreadError) as raised:
        Fleet(settings, redis_client, engine, settings.served).run(stop)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert stop.is_set()


def test_a_limit_holds_however_many_threads_race_for_leases(database_url):
    mine, theirs = Leases(database_url, "race"), Leases(database_url, "race")
    try:
        start = threading.Barrier(8)
        got: list[int] = []

        def take(partition: int) -> None:
            start.wait()
            if mine.acquire(partition, limit=2):
                got.append(partition)

        threads = [threading.Thread(target=take, args=(p,)) for p in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(got) == 2
        # The others are free for another process; the two are not.
        assert all(theirs.acquire(p) for p in range(8) if p not in got)
        assert not any(theirs.acquire(p) for p in got)
    finally:
        mine.close()
        theirs.close()


def _until(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_interactive_jobs_are_projected_while_a_bulk_round_is_held_up(
    redis_url, database_url, names, redis_client, engine
):
    settings = settings_for(redis_url, database_url, names)
    stop = threading.Event()
    running = Fleet(settings, redis_client, engine, settings.served)
    thread = threading.Thread(target=running.run, args=(stop,))
    thread.start()
    holder = engine.connect()
    try:
        first = submit_to(redis_client, names, ACME_BULK, "the bulk lane's first job")
        assert _until(lambda: first in rows(engine))
        # A bulk round stuck in its transaction (as on a host whose PostgreSQL is slow): the
        # bulk lane's checkpoint row is locked, and the round's first statement waits for it.
        holder.execute(
            text(
                "SELECT 1 FROM projector_checkpoints WHERE partition = 0 AND lane = :lane "
                "FOR UPDATE"
            ),
            {"lane": ACME_BULK.name},
        )
        held = submit_to(redis_client, names, ACME_BULK, "a job of the held round")

        def waiting_for_the_lock() -> bool:
            with engine.connect() as conn:
                query = (
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return bool(conn.execute(text(query)).scalar())

        assert _until(waiting_for_the_lock)
        single = submit_to(redis_client, names, ACME_INTERACTIVE, "a single job")
        assert _until(lambda: single in rows(engine))
        assert held not in rows(engine)
        holder.rollback()
        assert _until(lambda: held in rows(engine))
    finally:
        holder.close()
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
