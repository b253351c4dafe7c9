"""`projector rebuild`: a shadow table folded from the log and swapped in while jobs flow."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text, update

from eventlog.lanes import DEFAULT_LANE
from projector import shadow
from projector.rebuild import REBUILD_NAME
from projector.store import ProjectionStore
from readmodel.tables import jobs, projector_checkpoints
from tests.integration.test_projector import expected, load, progress, rows
from tests.support import submit


def table_shape(engine) -> tuple[set[str], set[str]]:
    """Index names and constraint names of `jobs`: what the swap must keep as they were."""
    with engine.connect() as conn:
        indexes = shadow.index_names(conn, "jobs")
        constraints = conn.execute(
            text("SELECT conname FROM pg_constraint WHERE conrelid = 'jobs'::regclass")
        ).scalars()
        return indexes, set(constraints)


def checkpoint_names(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(projector_checkpoints.c.name)).scalars())


def test_rebuild_equals_live_while_jobs_keep_flowing(
    make_projector, make_rebuild, redis_client, names, engine
):
    load(redis_client, names, 200)
    live = make_projector(read_count=20)
    live.catch_up()
    shape = table_shape(engine)
    with engine.begin() as conn:  # a wrong live row: the rebuild must replace, not copy, it
        conn.execute(update(jobs).values(retry_count=42))
    stop, failures = threading.Event(), []

    def live_projector() -> None:
        live.run(stop)

    def submissions() -> None:
        i = 0
        while not stop.is_set():
            job_id = submit(redis_client, names, f"during the rebuild {i}")
            progress(redis_client, names, job_id, retries=i % 3, label="spam")
            i += 1

    def reader() -> None:  # the API's read, by table name, all through the swap
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    conn.execute(select(jobs).limit(5)).all()
            except Exception as exc:  # pragma: no cover - a failure is the finding
                failures.append(exc)

    threads = [threading.Thread(target=f) for f in (live_projector, submissions, reader)]
    for thread in threads:
        thread.start()
    try:
        rebuild = make_rebuild(batch=30, swap_within=60)
        rebuild.run()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    live.catch_up()
    assert failures == []
    assert rows(engine) == expected(redis_client, names)
    assert table_shape(engine) == shape
    assert checkpoint_names(engine) == {"jobs"}
    with engine.connect() as conn:
        assert not shadow.exists(conn, shadow.SHADOW)
        assert not shadow.exists(conn, shadow.OLD)
    assert "swapped in" in rebuild.reports[-1]


def test_a_crashed_rebuild_resumes_from_its_checkpoint(
    make_projector, make_rebuild, redis_client, names, engine, monkeypatch
):
    load(redis_client, names, 60)
    make_projector().catch_up()
    applied = []
    real_apply = ProjectionStore.apply_in

    def crash_after_three(self, conn, expected_at, entries, archives, **lane):
        if self.name == REBUILD_NAME and len(applied) == 3:
            raise RuntimeError("rebuild died mid-way")
        applied.append(len(entries))
        return real_apply(self, conn, expected_at, entries, archives, **lane)

    with monkeypatch.context() as patch:
        patch.setattr(ProjectionStore, "apply_in", crash_after_three)
        with pytest.raises(RuntimeError):
            make_rebuild(batch=10).run()
    assert ProjectionStore(engine, REBUILD_NAME).checkpoint().entries_read == 30
    rebuild = make_rebuild(batch=10)
    rebuild.run()
    assert rebuild.reports[0] == "rebuild: resuming after 30 events"
    assert rows(engine) == expected(redis_client, names)
    assert checkpoint_names(engine) == {"jobs"}


def test_a_fresh_rebuild_discards_an_unfinished_one(
    make_projector, make_rebuild, redis_client, names, engine
):
    load(redis_client, names, 10)
    make_projector().catch_up()
    with engine.begin() as conn:
        shadow.create(conn)
        conn.execute(text("INSERT INTO jobs_rebuild SELECT * FROM jobs"))
    make_rebuild(fresh=True).run()
    assert rows(engine) == expected(redis_client, names)


def test_rebuild_of_an_empty_log_gives_an_empty_table(make_rebuild, engine):
    make_rebuild().run()
    assert rows(engine) == {}


def test_a_rebuild_folds_every_partition_and_swaps_once(
    make_projector, make_rebuild, redis_client, names, engine
):
    load(redis_client, names, 150, partitions=3)
    for p in range(3):
        make_projector(read_count=20, partition=p).catch_up()
    with engine.begin() as conn:  # wrong live rows: the rebuild must replace them all
        conn.execute(update(jobs).values(retry_count=42))
    done = make_rebuild(batch=16, partitions=3).run()
    assert rows(engine) == expected(redis_client, names, partitions=3)
    assert sorted(done) == [0, 1, 2]
    for p in range(3):
        live = ProjectionStore(engine, "jobs", partition=p).checkpoint()
        assert done[p] == {DEFAULT_LANE: live}
        assert live.entries_read == redis_client.xlen(names.events(p))
    assert REBUILD_NAME not in checkpoint_names(engine)
