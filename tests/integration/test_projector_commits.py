"""How the projector's transactions commit: the live batches without waiting for the disk, the
trim's read of the checkpoint only once everything before it is on disk.

A trigger records `synchronous_commit` as it is inside each transaction that writes: the
setting a commit obeys is the one in force when it runs, so this is what the server did.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text

from eventlog.lanes import DEFAULT_LANE
from projector.store import Checkpoint, ProjectionStore
from tests.integration.test_projector import load
from tests.integration.test_projector_batches import COPY, DOCUMENTS

RECORD_MODES = """
CREATE TABLE commit_modes (at serial, tbl text, mode text);
CREATE FUNCTION record_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO commit_modes (tbl, mode)
  VALUES (TG_TABLE_NAME, current_setting('synchronous_commit'));
  RETURN NULL;
END $$;
CREATE TRIGGER record_jobs AFTER INSERT OR UPDATE ON jobs
  FOR EACH STATEMENT EXECUTE FUNCTION record_commit_mode();
CREATE TRIGGER record_checkpoints AFTER INSERT OR UPDATE ON projector_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION record_commit_mode();
"""


def record_commit_modes(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(RECORD_MODES)


def commit_modes(engine: Engine, clear: bool = False) -> list[tuple[str, str]]:
    with engine.begin() as conn:
        modes = [(r.tbl, r.mode) for r in conn.execute(text("SELECT * FROM commit_modes"))]
        if clear:
            conn.execute(text("DELETE FROM commit_modes"))
    return modes


def session_mode(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar())


def engine_committing(database_url: str, mode: str) -> Engine:
    """Connections whose own default is `mode`, whatever the server's (the embedded test
    server's is off)."""
    return create_engine(database_url, connect_args={"options": f"-c synchronous_commit={mode}"})


@pytest.fixture
def engine_with_sync_commits(database_url) -> Iterator[Engine]:
    engine = engine_committing(database_url, "on")
    yield engine
    engine.dispose()


@pytest.fixture
def engine_without_sync_commits(database_url) -> Iterator[Engine]:
    engine = engine_committing(database_url, "off")
    yield engine
    engine.dispose()


@pytest.mark.parametrize("small_batch", [DOCUMENTS, COPY], ids=["json", "copy"])
def test_live_batches_commit_without_waiting_for_the_disk(
    redis_client, names, engine, engine_with_sync_commits, small_batch
):
    record_commit_modes(engine)
    load(redis_client, names, 6)
    store = ProjectionStore(engine_with_sync_commits, "jobs", small_batch=small_batch)
    checkpoint = Checkpoint()
    for at in range(0, len(entries := redis_client.xrange(names.events(0))), 5):
        checkpoint = store.apply(checkpoint, entries[at : at + 5])
    modes = commit_modes(engine)
    assert {tbl for tbl, _ in modes} == {"jobs", "projector_checkpoints"}
    assert {mode for _, mode in modes} == {"off"}
    # SET LOCAL: the pooled connection the batches used is back to its own default.
    assert session_mode(engine_with_sync_commits) == "on"


def test_the_trim_reads_the_checkpoint_once_it_is_on_disk(
    make_projector, redis_client, names, engine, engine_without_sync_commits
):
    record_commit_modes(engine)
    load(redis_client, names, 4)
    checkpoint = make_projector(small_batch=DOCUMENTS).catch_up()[DEFAULT_LANE]
    commit_modes(engine, clear=True)
    with engine.connect() as conn:
        written = conn.exec_driver_sql("SELECT pg_current_wal_insert_lsn()").scalar()
    store = ProjectionStore(engine_without_sync_commits, "jobs")
    assert session_mode(engine_without_sync_commits) == "off"
    assert store.flushed_checkpoint() == checkpoint
    # Its own write committed synchronously, so the WAL is flushed past every earlier commit.
    assert commit_modes(engine) == [("projector_checkpoints", "on")]
    with engine.connect() as conn:
        flushed = conn.execute(
            text("SELECT pg_current_wal_flush_lsn() >= CAST(:lsn AS pg_lsn)"), {"lsn": written}
        )
        assert flushed.scalar() is True


def test_a_projection_without_a_checkpoint_has_nothing_flushed(engine):
    assert ProjectionStore(engine, "jobs").flushed_checkpoint() == Checkpoint()
