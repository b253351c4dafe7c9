"""The events archive, stream retention, and replays that read the archive and old versions."""

from __future__ import annotations

from sqlalchemy import select, update

from domain import upcasting
from domain.events import JobRequested, decode
from domain.job import fold
from eventlog.lanes import DEFAULT_LANE
from projector import archiver, retention
from projector.store import ProjectionStore
from readmodel.tables import jobs
from tests.integration.rebuild_support import archived
from tests.integration.test_projector import load, rows
from tests.support import submit


def consume_all(client, names, ack_upto: int | None = None) -> list[str]:
    """Read every entry through the workers group; acknowledge the first `ack_upto` of them."""
    client.xgroup_create(names.events(0), names.workers_group, "0", mkstream=True)
    reply = client.xreadgroup(names.workers_group, "w", {names.events(0): ">"}, count=100_000)
    ids = [entry_id for entry_id, _ in reply[0][1]]
    done = ids if ack_upto is None else ids[:ack_upto]
    if done:
        client.xack(names.events(0), names.workers_group, *done)
    return ids


def test_the_archive_holds_every_entry_as_written(make_projector, redis_client, names, engine):
    load(redis_client, names, 12)
    redis_client.xadd(names.events(0), {"type": "Nonsense", "v": "1"})
    make_projector(read_count=5).catch_up()
    assert archived(engine) == redis_client.xrange(names.events(0))


def test_archiving_twice_changes_nothing(make_projector, redis_client, names, engine):
    load(redis_client, names, 5)
    make_projector().catch_up()
    before = archived(engine)
    # The archive is append-only: a replay of the same entries rewrites none.
    with engine.begin() as conn:
        archiver.write(conn, 0, redis_client.xrange(names.events(0)))
    assert archived(engine) == before


def test_trim_keeps_what_is_not_archived(make_projector, redis_client, names, engine):
    load(redis_client, names, 10)
    consume_all(redis_client, names)
    projector = make_projector(read_count=7)
    checkpoint = projector.step(projector.positions(), block_ms=0)[DEFAULT_LANE]
    retention.trim(redis_client, names, ProjectionStore(engine, "jobs"))
    first = redis_client.xrange(names.events(0), count=1)[0][0]
    assert first == checkpoint.last_entry_id  # nothing after the archive went


def test_trim_never_removes_a_pending_or_undelivered_entry(
    make_projector, redis_client, names, engine
):
    load(redis_client, names, 10)
    ids = consume_all(redis_client, names, ack_upto=6)
    make_projector().catch_up()
    retention.trim(redis_client, names, ProjectionStore(engine, "jobs"))
    assert redis_client.xrange(names.events(0), count=1)[0][0] == ids[6]  # the oldest pending
    redis_client.xack(names.events(0), names.workers_group, *ids[6:])
    submit(redis_client, names, "not delivered yet")
    make_projector().catch_up()
    retention.trim(redis_client, names, ProjectionStore(engine, "jobs"))
    assert redis_client.xrange(names.events(0), count=1)[0][0] == ids[-1]  # last delivered


def test_trim_without_workers_group_or_inside_the_window_removes_nothing(
    make_projector, redis_client, names, engine
):
    load(redis_client, names, 4)
    make_projector().catch_up()
    live = ProjectionStore(engine, "jobs")
    assert retention.trim(redis_client, names, live) == 0
    consume_all(redis_client, names)
    assert retention.trim(redis_client, names, live, keep_seconds=3600) == 0


def test_periodic_trim_in_the_live_projector(make_projector, redis_client, names, engine):
    load(redis_client, names, 6)
    consume_all(redis_client, names)
    projector = make_projector(trim_interval_s=0.001)
    projector.catch_up()
    projector._next_trim = 0
    projector._maybe_trim()
    assert redis_client.xlen(names.events(0)) == 1  # all but the checkpoint's own entry


def test_a_rebuild_after_trimming_reads_the_archive(
    make_projector, make_rebuild, redis_client, names, engine
):
    load(redis_client, names, 20)
    consume_all(redis_client, names)
    make_projector().catch_up()
    assert retention.trim(redis_client, names, ProjectionStore(engine, "jobs")) > 0
    load(redis_client, names, 5)  # after the trim: only in the stream
    make_projector().catch_up()
    whole_log = archived(engine)
    assert len(whole_log) > redis_client.xlen(names.events(0))
    truth = fold(decode(fields) for _, fields in whole_log)
    with engine.begin() as conn:  # damage the live table: the rebuild must not copy it
        conn.execute(update(jobs).values(status="queued", attempts=99))
    make_rebuild(batch=7).run()
    assert rows(engine) == truth


def test_a_replay_upcasts_old_versions_into_the_right_rows(
    make_projector, redis_client, names, engine
):
    old = submit(redis_client, names, "current version")
    redis_client.xadd(
        names.events(0),
        {"type": "JobRequested", "v": "0", "job_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
         "occurred_at": "2026-11-28T12:00:00.000000Z", "text": "old version"},
    )  # fmt: skip

    def default_model(fields):
        return {**fields, "model_version": "spam-tfidf-lr-v1"}

    with upcasting.registered("JobRequested", 0, default_model):
        make_projector().catch_up()
    found = rows(engine)
    assert set(found) == {old, "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}
    assert found["0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"].model_version == "spam-tfidf-lr-v1"
    with engine.connect() as conn:
        versions = conn.execute(select(jobs.c.status)).scalars().all()
    assert versions == ["queued", "queued"]
    current = str(JobRequested.schema_version)
    assert [f["v"] for _, f in archived(engine)] == [current, "0"]  # archived as written
