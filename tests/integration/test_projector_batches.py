"""The projector's two ways to write a batch, INSERTs over arrays (small batches) and COPY
through the stages (large ones): the same rows, the same archive, the same guarantees."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import psycopg
import pytest
import redis
import sqlalchemy.exc
from sqlalchemy import Engine, select

from domain.events import JobFailed, JobSucceeded
from domain.job import fold
from eventlog.entries import Entry, stream_fields
from eventlog.lanes import DEFAULT_LANE
from eventlog.names import Names
from projector import shadow, statements
from projector import store as store_module
from projector.store import Checkpoint, ProjectionStore
from readmodel import archive
from readmodel.rows import to_state
from readmodel.tables import events, jobs
from tests.integration.test_projector import load
from tests.support import append_failure, log_events, race_catch_up, submit

DOCUMENTS = 1_000_000  # every batch is small
COPY = 0  # every batch is large
PATHS = pytest.mark.parametrize("small_batch", [DOCUMENTS, COPY], ids=["json", "copy"])


def rows(engine: Engine, table=jobs) -> dict:
    with engine.connect() as conn:
        return {str(r["job_id"]): to_state(r) for r in conn.execute(select(table)).mappings()}


def archived(engine: Engine) -> list[Entry]:
    with engine.connect() as conn:
        return archive.read(conn, 0, "0-0", None, None, 100_000)


def expected(client: redis.Redis, names: Names) -> dict:
    return fold(event for _, event in log_events(client, names))


def chunks(entries: Sequence[Entry], sizes: Sequence[int]) -> list[Sequence[Entry]]:
    """`entries` cut into batches of the `sizes`, taken in turn."""
    out, at, turn = [], 0, 0
    while at < len(entries):
        size = sizes[turn % len(sizes)]
        out.append(entries[at : at + size])
        at, turn = at + size, turn + 1
    return out


def assert_pool_connection_is_clean(engine: Engine) -> None:
    """The connection the batch used went back to the pool out of autocommit, with no
    transaction open (the pool hands the same one out again)."""
    with engine.connect() as conn:
        raw = statements.driver_connection(conn)
        assert not raw.autocommit
        assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


@PATHS
def test_rows_and_archive_equal_the_log(make_projector, redis_client, names, engine, small_batch):
    load(redis_client, names, 20)
    checkpoint = make_projector(7, small_batch).catch_up()[DEFAULT_LANE]
    entries = redis_client.xrange(names.events(0))
    assert rows(engine) == expected(redis_client, names)
    assert archived(engine) == entries
    assert checkpoint == Checkpoint(entries[-1][0], len(entries))
    assert_pool_connection_is_clean(engine)


def test_small_and_large_batches_mixed(redis_client, names, engine):
    load(redis_client, names, 20)
    entries = redis_client.xrange(names.events(0))
    store = ProjectionStore(engine, "jobs", small_batch=4)
    checkpoint = Checkpoint()
    for batch in chunks(entries, [1, 9, 3, 1, 12, 4, 5]):
        checkpoint = store.apply(checkpoint, batch)
    assert rows(engine) == expected(redis_client, names)
    assert archived(engine) == entries
    assert store.checkpoint() == checkpoint == Checkpoint(entries[-1][0], len(entries))


@PATHS
def test_a_crash_before_commit_applies_nothing(
    make_projector, redis_client, names, engine, monkeypatch, small_batch
):
    load(redis_client, names, 10)

    def crash(*_args, **_kwargs):
        raise RuntimeError("projector died mid-transaction")

    with monkeypatch.context() as patch:
        patch.setattr(archive, "rows", crash)  # after the checkpoint moved, before the commit
        with pytest.raises(RuntimeError):
            make_projector(small_batch=small_batch).catch_up()
    assert rows(engine) == {}
    assert archived(engine) == []
    assert ProjectionStore(engine, "jobs").checkpoint() == Checkpoint()
    assert_pool_connection_is_clean(engine)
    make_projector(small_batch=small_batch).catch_up()
    assert rows(engine) == expected(redis_client, names)


@PATHS
def test_a_write_the_server_refuses_commits_nothing(
    make_projector, redis_client, names, engine, monkeypatch, small_batch
):
    """The statement fails in the pipeline that ends with COMMIT: the server skips the COMMIT,
    and the checkpoint and archive written before it in the transaction are rolled back."""
    load(redis_client, names, 10)
    to_row = store_module.to_row

    def bogus(*args, **kwargs):
        return {**to_row(*args, **kwargs), "status": "bogus"}  # jobs_status_valid refuses it

    with monkeypatch.context() as patch:
        patch.setattr(store_module, "to_row", bogus)
        with pytest.raises(psycopg.errors.CheckViolation):
            make_projector(small_batch=small_batch).catch_up()
    assert rows(engine) == {}
    assert archived(engine) == []
    assert ProjectionStore(engine, "jobs").checkpoint() == Checkpoint()
    assert_pool_connection_is_clean(engine)
    make_projector(small_batch=small_batch).catch_up()
    assert rows(engine) == expected(redis_client, names)


@PATHS
def test_two_projectors_never_apply_an_event_twice(
    make_projector, redis_client, names, engine, small_batch
):
    load(redis_client, names, 60)
    failures = race_catch_up(lambda: make_projector(5, small_batch), 200)
    assert failures == []
    assert rows(engine) == expected(redis_client, names)
    assert archived(engine) == redis_client.xrange(names.events(0))


@PATHS
def test_batches_in_the_callers_transaction(redis_client, names, engine, small_batch):
    """What a rebuild does: several batches in one transaction, into the shadow table (the
    stages are emptied between batches)."""
    load(redis_client, names, 20)
    entries = redis_client.xrange(names.events(0))
    with engine.begin() as conn:
        shadow.create(conn)
    store = ProjectionStore(engine, "test-shadow", shadow.jobs_rebuild, small_batch=small_batch)
    checkpoint = Checkpoint()
    with engine.begin() as conn:
        for batch in chunks(entries, [9]):
            checkpoint = store.apply_in(conn, checkpoint, batch, archives=True)
    assert rows(engine, shadow.jobs_rebuild) == expected(redis_client, names)
    assert rows(engine) == {}
    assert archived(engine) == entries
    assert store.checkpoint() == checkpoint == Checkpoint(entries[-1][0], len(entries))


@PATHS
def test_text_with_nul_is_projected_and_archived(
    make_projector, redis_client, names, engine, small_batch
):
    """PostgreSQL holds no U+0000: the archive has U+FFFD in its place (and nothing else
    differs), where the batch used to fail on every retry."""
    job_id = submit(redis_client, names, "before\x00after")
    redis_client.xadd(names.events(0), {"type": "Odd\x00Type", "v": "1", "odd\x00key": "\x00"})
    checkpoint = make_projector(small_batch=small_batch).catch_up()[DEFAULT_LANE]
    assert checkpoint.entries_read == 2
    assert [state.status.value for state in rows(engine).values()] == ["queued"]
    (requested, odd) = redis_client.xrange(names.events(0))
    assert set(rows(engine)) == {job_id}
    with engine.connect() as conn:
        found = {r.entry_id: r for r in conn.execute(select(events))}
    assert found[requested[0]].fields == {**requested[1], "text": "before\ufffdafter"}
    assert found[requested[0]].job_id == job_id
    assert found[requested[0]].type == "JobRequested"
    assert found[odd[0]].fields == {"type": "Odd\ufffdType", "v": "1", "odd\ufffdkey": "\ufffd"}
    assert found[odd[0]].type == "Odd\ufffdType"


def test_a_lost_connection_is_an_error_the_runner_retries(
    redis_client, names, engine, database_url
):
    """The statements go by psycopg, under SQLAlchemy: losing the server mid-batch raises
    SQLAlchemy's OperationalError all the same (the runner backs off and retries on it), and
    the next batch gets a working connection."""
    submit(redis_client, names, "hello")
    entries = redis_client.xrange(names.events(0))
    store = ProjectionStore(engine, "jobs")
    with engine.connect() as conn:
        pid = statements.driver_connection(conn).info.backend_pid
    url = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(sqlalchemy.exc.OperationalError):
        store.apply(Checkpoint(), entries)
    assert store.apply(Checkpoint(), entries) == Checkpoint(entries[-1][0], 1)
    assert set(rows(engine)) == {entries[0][1]["job_id"]}


@PATHS
def test_values_reach_the_rows_exactly(make_projector, redis_client, names, engine, small_batch):
    """Floats to the last bit, timestamps to the microsecond, text of any kind: the JSON
    documents of small batches and the COPY of large ones store what the fold computed."""
    ok = submit(redis_client, names, "ok")
    bad = submit(redis_client, names, "bad")
    at = datetime(2026, 11, 28, 23, 59, 59, 999_999, tzinfo=UTC)
    odd = 'quote " backslash \\ newline \n tab \t line sep \u2028 emoji \U0001f600 é'
    outcomes = [
        JobSucceeded(
            job_id=ok,
            occurred_at=at,
            consumer="c-1",
            attempt=1,
            label="spam",
            score=0.1 + 0.2,
            probabilities={"ham": 1 / 3, "spam": 2 / 3, odd: 5e-324},
            model_version="v1",
            inference_ms=0.001,
        ),
        JobFailed(
            job_id=bad,
            occurred_at=at.replace(microsecond=1),
            consumer="c-2",
            attempt=3,
            error_type="InferenceError",
            error=odd,
            transient=False,
        ),
    ]
    for outcome in outcomes:
        redis_client.xadd(names.events(0), stream_fields(outcome))
    make_projector(small_batch=small_batch).catch_up()
    projected = rows(engine)
    assert projected == expected(redis_client, names)
    assert projected[ok].result is not None
    assert projected[ok].result.score == 0.1 + 0.2
    assert projected[ok].result.probabilities[odd] == 5e-324
    assert projected[ok].finished_at == at
    assert projected[bad].error == odd
    assert archived(engine) == redis_client.xrange(names.events(0))


@PATHS
def test_an_error_with_nul_is_projected_with_the_replacement_character(
    make_projector, redis_client, names, engine, small_batch
):
    """A model's error message can quote its input, and the log can hold a NUL, which no text
    column can: the row gets U+FFFD in its place, where the batch used to fail on every retry."""
    job_id = submit(redis_client, names, "t")
    append_failure(
        redis_client, names, job_id, "cannot read 'a\x00b'", "Inference\x00Error", "c\x00"
    )
    make_projector(small_batch=small_batch).catch_up()
    (row,) = rows(engine).values()
    assert row.status.value == "failed"
    assert row.error == "cannot read 'a\ufffdb'"
    assert row.error_type == "Inference\ufffdError"
