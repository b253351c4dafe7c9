"""The projector against real Redis and PostgreSQL: the rows are the fold of the log."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import delete, select

from domain.events import JobRetrying, JobStarted, JobSucceeded, encode
from domain.ids import partition_of
from domain.job import fold
from eventlog.lanes import DEFAULT_LANE
from eventlog.names import Names
from projector.store import Checkpoint, ProjectionStore
from readmodel import archive
from readmodel.rows import to_state
from readmodel.tables import jobs, projector_checkpoints
from tests.support import log_events, race_catch_up, submit


def now() -> datetime:
    return datetime.now(UTC)


def progress(client: redis.Redis, names: Names, job_id: str, retries: int, label: str) -> None:
    """Append what a consumer would: start, some retries, success."""
    client.xadd(
        names.events(partition_of(job_id)),
        encode(JobStarted(job_id=job_id, occurred_at=now(), consumer="c", attempt=1)),
    )
    for attempt in range(1, retries + 1):
        retry = JobRetrying(
            job_id=job_id,
            occurred_at=now(),
            consumer="c",
            attempt=attempt,
            error_type="TransientInferenceError",
            error="flaky",
            delay_ms=1,
        )
        client.xadd(names.events(partition_of(job_id)), encode(retry))
    done = JobSucceeded(
        job_id=job_id,
        occurred_at=now(),
        consumer="c",
        attempt=retries + 1,
        label=label,
        score=0.8,
        probabilities={label: 0.8, "x": 0.2},
        model_version="m",
        inference_ms=0.5,
    )
    client.xadd(names.events(partition_of(job_id)), encode(done))


def rows(engine) -> dict:
    with engine.connect() as conn:
        return {str(r["job_id"]): to_state(r) for r in conn.execute(select(jobs)).mappings()}


def expected(client: redis.Redis, names: Names, partitions: int = 1) -> dict:
    return fold(event for p in range(partitions) for _, event in log_events(client, names, p))


def load(client: redis.Redis, names: Names, count: int, partitions: int = 1) -> list[str]:
    job_ids = [
        submit(client, names, f"message number {i}", partition=i % partitions) for i in range(count)
    ]
    for i, job_id in enumerate(job_ids):
        if i % 3:
            progress(client, names, job_id, retries=i % 4, label="ham" if i % 2 else "spam")
    return job_ids


def test_rows_equal_the_fold_of_the_log(make_projector, redis_client, names, engine):
    load(redis_client, names, 30)
    make_projector(read_count=7).catch_up()
    assert rows(engine) == expected(redis_client, names)


def test_checkpoint_records_the_last_entry_and_count(make_projector, redis_client, names, engine):
    load(redis_client, names, 5)
    checkpoint = make_projector().catch_up()[DEFAULT_LANE]
    entries = redis_client.xrange(names.events(0))
    assert checkpoint == Checkpoint(entries[-1][0], len(entries))
    assert ProjectionStore(engine, "jobs").checkpoint() == checkpoint


def test_a_crash_before_commit_applies_nothing_and_the_retry_applies_once(
    make_projector, redis_client, names, engine, monkeypatch
):
    load(redis_client, names, 10)

    def crash(*_args, **_kwargs):
        raise RuntimeError("projector died mid-transaction")

    with monkeypatch.context() as patch:
        patch.setattr(archive, "rows", crash)  # after the checkpoint moved, before the commit
        with pytest.raises(RuntimeError):
            make_projector().catch_up()
    assert rows(engine) == {}
    assert ProjectionStore(engine, "jobs").checkpoint() == Checkpoint()
    make_projector().catch_up()
    assert rows(engine) == expected(redis_client, names)


def test_two_projectors_never_apply_an_event_twice(make_projector, redis_client, names, engine):
    load(redis_client, names, 60)
    failures = race_catch_up(lambda: make_projector(read_count=5), 200)
    assert failures == []
    assert rows(engine) == expected(redis_client, names)


def test_invalid_entries_are_passed_over(make_projector, redis_client, names, engine):
    good = submit(redis_client, names, "hello")
    redis_client.xadd(names.events(0), {"type": "Nonsense", "v": "1"})
    redis_client.xadd(
        names.events(0),
        {
            "type": "JobStarted",
            "v": "1",
            "job_id": "not-a-uuid",
            "occurred_at": "2026-11-28T12:00:00Z",
            "consumer": "c",
            "attempt": "1",
        },
    )
    checkpoint = make_projector().catch_up()[DEFAULT_LANE]
    assert set(rows(engine)) == {good}
    assert checkpoint.entries_read == 3


def test_a_rebuild_from_the_log_gives_the_same_rows(make_projector, redis_client, names, engine):
    load(redis_client, names, 25)
    make_projector().catch_up()
    live = rows(engine)
    with engine.begin() as conn:
        conn.execute(delete(jobs))
        conn.execute(delete(projector_checkpoints))
    make_projector(read_count=3).catch_up()
    assert rows(engine) == live


class RecordingStop(threading.Event):
    """A stop signal that records what the loop waited for; the first wait stops the loop."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.set()
        return True


@pytest.mark.parametrize(("linger_ms", "expected"), [(20, [0.02]), (5, [0.005])])
def test_after_a_busy_batch_the_live_loop_lingers(
    make_projector, redis_client, names, engine, linger_ms, expected
):
    load(redis_client, names, 10)  # one read of 30-odd entries
    stop = RecordingStop()
    make_projector(linger_ms=linger_ms, metrics_port=0).run(stop)
    assert stop.waits == expected
    assert rows(engine) == fold(event for _, event in log_events(redis_client, names))


def test_a_quiet_log_is_read_again_without_waiting(make_projector, redis_client, names, engine):
    submit(redis_client, names, "alone")
    stop = RecordingStop()
    projector = make_projector(linger_ms=20, metrics_port=0)
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    projector.run(stop)
    timer.join()
    assert stop.waits == []
    assert len(rows(engine)) == 1
