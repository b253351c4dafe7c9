"""The projection of a partition's lanes: each lane with its own checkpoint and archive rows,
the interactive lanes served before the bulk ones, the bulk lanes sharing each round, lanes
found while the projector runs, and a rebuild that gives the same rows."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime

import redis
from sqlalchemy import select, text

from domain.events import Event, JobRequested, JobStarted, decode, encode
from domain.ids import new_job_id, partition_of
from domain.job import JobStatus, fold
from domain.lanes import BULK, INTERACTIVE
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from eventlog.submission import Retention
from eventlog.submission import submit as submit_event
from readmodel import announcement, archive
from readmodel.rows import to_state
from readmodel.tables import events, jobs
from tests.integration.rebuild_support import archived
from tests.support import MODEL_VERSION, race_catch_up, succeeded

ACME_INTERACTIVE = Lane(INTERACTIVE, "acme")
ACME_BULK = Lane(BULK, "acme")
GLOBEX_BULK = Lane(BULK, "globex")
LANES = (DEFAULT_LANE, ACME_INTERACTIVE, ACME_BULK, GLOBEX_BULK)
RETENTION = Retention(job_index_ttl_s=3600, idempotency_ttl_s=3600)


def now() -> datetime:
    return datetime.now(UTC)


def requested(lane: Lane, text: str, partition: int = 0) -> JobRequested:
    return JobRequested(
        job_id=new_job_id(partition),
        occurred_at=now(),
        text=text,
        model_version=MODEL_VERSION,
        tenant=lane.tenant,
        lane=lane.kind,
    )


def submit_to(client: redis.Redis, names: Names, lane: Lane, text: str, partition: int = 0) -> str:
    """Accept a job of `lane` as the API does (the SUBMIT script registers the lane)."""
    return submit_event(client, names, requested(lane, text, partition), RETENTION).job_id


def append(client: redis.Redis, names: Names, lane: Lane, event: Event) -> str:
    """Append an event of a job to its lane's stream, as a consumer will."""
    return str(client.xadd(names.lane(partition_of(event.job_id), lane), encode(event)))


def finish(client: redis.Redis, names: Names, lane: Lane, job_id: str) -> None:
    append(
        client, names, lane, JobStarted(job_id=job_id, occurred_at=now(), consumer="c", attempt=1)
    )
    append(client, names, lane, succeeded(job_id))


def load_lanes(
    client: redis.Redis,
    names: Names,
    per_lane: int,
    lanes: Iterable[Lane] = LANES,
    partitions: int = 1,
) -> dict[str, Lane]:
    """`per_lane` jobs in each lane (spread over the partitions), two of three finished; each
    job's lane."""
    made = {}
    for lane in lanes:
        for i in range(per_lane):
            job_id = submit_to(client, names, lane, f"{lane.name} {i}", partition=i % partitions)
            if i % 3:
                finish(client, names, lane, job_id)
            made[job_id] = lane
    return made


def backlog(client: redis.Redis, names: Names, lane: Lane, count: int, partition: int = 0) -> None:
    """`count` requests of `lane`, appended straight to its stream (no job index), registered."""
    client.sadd(names.lanes(partition), lane.name)
    stream = names.lane(partition, lane)
    for start in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 1000, count)):
            pipe.xadd(stream, encode(requested(lane, f"backlog {i}", partition)))
        pipe.execute()


def lane_entries(client: redis.Redis, names: Names, lane: Lane, partition: int = 0) -> list:
    return client.xrange(names.lane(partition, lane))


def expected(client: redis.Redis, names: Names, partitions: int = 1) -> dict:
    """The fold of every lane of every partition (a job's events are all in one lane)."""
    every: list[Event] = []
    for p in range(partitions):
        for lane in LANES:
            every += [decode(fields) for _, fields in lane_entries(client, names, lane, p)]
    return fold(every)


def rows(engine) -> dict:
    with engine.connect() as conn:
        return {str(r["job_id"]): to_state(r) for r in conn.execute(select(jobs)).mappings()}


def lane_columns(engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        found = conn.execute(select(jobs.c.job_id, jobs.c.tenant, jobs.c.lane))
        return {str(r.job_id): (r.tenant, r.lane) for r in found}


def archived_lane(engine, lane: Lane, partition: int = 0) -> list:
    with engine.connect() as conn:
        return archive.read(conn, partition, "0-0", None, None, 1_000_000, lane=lane)


def test_every_lane_is_projected_with_its_own_checkpoint_and_archive(
    make_projector, redis_client, names, engine
):
    made = load_lanes(redis_client, names, 12)
    projector = make_projector(read_count=5, bulk_read_count=4)
    positions = projector.catch_up()
    assert set(positions) == set(LANES)
    assert set(projector.lanes) == set(LANES)
    stored = projector._store.checkpoints()
    for lane in LANES:
        entries = lane_entries(redis_client, names, lane)
        assert positions[lane] == stored[lane]
        assert stored[lane].last_entry_id == entries[-1][0]
        assert stored[lane].entries_read == len(entries)
        assert archived_lane(engine, lane) == entries
    assert rows(engine) == expected(redis_client, names)
    assert lane_columns(engine) == {
        job_id: (lane.tenant, lane.kind) for job_id, lane in made.items()
    }
    # Entry ids are unique within a lane only: each row of the archive says its lane.
    with engine.connect() as conn:
        by_lane = dict(conn.execute(text("SELECT lane, count(*) FROM events GROUP BY lane")).all())
    assert by_lane == {lane.name: len(lane_entries(redis_client, names, lane)) for lane in LANES}


def test_one_transaction_moves_every_lane_it_read(make_projector, redis_client, names, engine):
    load_lanes(redis_client, names, 3, lanes=(DEFAULT_LANE, ACME_INTERACTIVE))
    projector = make_projector()
    after = projector.step(projector.positions(), block_ms=0)
    # Both interactive lanes in one read, one commit: each lane's checkpoint where it ends.
    for lane in (DEFAULT_LANE, ACME_INTERACTIVE):
        entries = lane_entries(redis_client, names, lane)
        assert after[lane].last_entry_id == entries[-1][0]
    assert projector._store.checkpoints() == after


def test_the_lanes_of_several_partitions_then_a_rebuild_give_the_same_rows(
    make_projector, make_rebuild, redis_client, names, engine
):
    load_lanes(redis_client, names, 9, partitions=2)
    for p in range(2):
        make_projector(read_count=7, bulk_read_count=5, partition=p).catch_up()
    live = rows(engine)
    columns = lane_columns(engine)
    assert live == expected(redis_client, names, partitions=2)
    whole_archive = archived(engine)
    with engine.begin() as conn:  # wrong live rows: the rebuild must replace them all
        conn.execute(text("UPDATE jobs SET retry_count = 42, lane = 'x', tenant = 'y'"))
    done = make_rebuild(batch=6, partitions=2).run()
    assert rows(engine) == live
    assert lane_columns(engine) == columns
    assert archived(engine) == whole_archive
    for p in range(2):
        assert set(done[p]) == set(LANES)
        for lane in LANES:
            entries = lane_entries(redis_client, names, lane, p)
            assert done[p][lane].last_entry_id == entries[-1][0]


def test_an_interactive_entry_behind_a_bulk_backlog_goes_first(
    make_projector, redis_client, names, engine
):
    heavy = Lane(BULK, "a")
    backlog(redis_client, names, heavy, 20_000)
    waiting = submit_to(redis_client, names, Lane(INTERACTIVE, "b"), "answer me")
    projector = make_projector(read_count=2000, bulk_read_count=256)
    positions = projector.positions()
    positions = projector.step(positions, block_ms=0)
    # The first step read the interactive lanes only: the job is projected, no bulk entry is.
    assert set(rows(engine)) == {waiting}
    assert positions[heavy].entries_read == 0
    positions = projector.step(positions, block_ms=0)
    assert positions[heavy].entries_read == 256  # one bulk round, then the interactive again
    finish(redis_client, names, Lane(INTERACTIVE, "b"), waiting)
    positions = projector.step(positions, block_ms=0)
    assert rows(engine)[waiting].status is JobStatus.SUCCEEDED
    assert positions[heavy].entries_read == 256


def test_a_live_projector_serves_an_interactive_job_long_before_the_backlog_ends(
    make_projector, redis_client, names, engine
):
    heavy, light = Lane(BULK, "a"), Lane(INTERACTIVE, "b")
    backlog(redis_client, names, heavy, 20_000)
    projector = make_projector(read_count=2000, lanes_refresh_ms=5000, metrics_port=0)
    stop = threading.Event()
    running = threading.Thread(target=projector.run, args=(stop,))
    running.start()
    try:
        deadline = time.monotonic() + 30
        while not projected(engine) and time.monotonic() < deadline:
            time.sleep(0.01)  # the backlog is being drained
        job_id = submit_to(redis_client, names, light, "answer me")
        finish(redis_client, names, light, job_id)
        began = time.monotonic()
        while time.monotonic() < deadline:
            if status(engine, job_id) == "succeeded":
                break
            time.sleep(0.002)
        took_s = time.monotonic() - began
        behind = projected(engine)
    finally:
        stop.set()
        running.join(10)
    assert status(engine, job_id) == "succeeded"
    assert behind < 20_000, "the backlog was done before the interactive job"
    # A bulk round or two (tens of ms), not the time to the next look for lanes.
    assert took_s < 1.0, took_s


def projected(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM jobs")).scalar_one())


def status(engine, job_id: str) -> str | None:
    with engine.connect() as conn:
        query = text("SELECT status FROM jobs WHERE job_id = :id")
        return conn.execute(query, {"id": job_id}).scalar()


def test_bulk_lanes_share_each_round_equally(make_projector, redis_client, names):
    big, small, other = Lane(BULK, "big"), Lane(BULK, "small"), Lane(BULK, "other")
    backlog(redis_client, names, big, 600)
    backlog(redis_client, names, other, 600)
    backlog(redis_client, names, small, 30)
    projector = make_projector(bulk_read_count=150)
    positions = projector.positions()
    seen = []
    for _ in range(4):
        positions = projector.step(positions, block_ms=0)
        seen.append(tuple(positions[lane].entries_read for lane in (big, other, small)))
    # 150 a round, 50 each; the small lane runs dry and the others go on at their share.
    assert seen == [(50, 50, 30), (100, 100, 30), (150, 150, 30), (200, 200, 30)]


def test_the_bulk_lanes_round_has_at_least_one_entry_each(make_projector, redis_client, names):
    lanes = [Lane(BULK, f"t{i}") for i in range(5)]
    for lane in lanes:
        backlog(redis_client, names, lane, 3)
    projector = make_projector(bulk_read_count=2)
    positions = projector.step(projector.positions(), block_ms=0)
    assert [positions[lane].entries_read for lane in lanes] == [1] * 5


def test_a_lane_registered_while_the_projector_waits_is_found(
    make_projector, redis_client, names, engine
):
    # Found once a read comes back empty, however long the refresh interval.
    projector = make_projector(lanes_refresh_ms=60_000, metrics_port=0)
    stop = threading.Event()
    running = threading.Thread(target=projector.run, args=(stop,))
    running.start()
    try:
        time.sleep(0.1)  # running, its lanes found: the default one only
        job_id = submit_to(redis_client, names, Lane(BULK, "newcomer"), "first of its lane")
        deadline = time.monotonic() + 10
        while status(engine, job_id) is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        running.join(10)
    assert status(engine, job_id) == "queued"
    assert Lane(BULK, "newcomer") in projector.lanes


def test_a_lane_registered_while_the_projector_is_busy_is_found_on_refresh(
    make_projector, redis_client, names, engine
):
    heavy = Lane(BULK, "a")
    backlog(redis_client, names, heavy, 3000)
    projector = make_projector(bulk_read_count=10, lanes_refresh_ms=50)
    positions = projector.step(projector.positions(), block_ms=0)
    job_id = submit_to(redis_client, names, Lane(INTERACTIVE, "late"), "while busy")
    time.sleep(0.06)
    positions = projector.step(positions, block_ms=0)  # finds it, and reads it first
    assert status(engine, job_id) == "queued"
    assert positions[heavy].entries_read == 10


def test_each_terminal_job_of_a_multi_lane_batch_is_announced(
    make_projector, redis_client, names, engine, redis_url, redis_cluster
):
    from eventlog.connection import connect

    listener = connect(redis_url, redis_cluster)
    pubsub = listener.pubsub()
    pubsub.subscribe(names.terminal)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"
    try:
        ids = [
            submit_to(redis_client, names, lane, "t") for lane in (DEFAULT_LANE, ACME_INTERACTIVE)
        ]
        for job_id, lane in zip(ids, (DEFAULT_LANE, ACME_INTERACTIVE), strict=True):
            finish(redis_client, names, lane, job_id)
        projector = make_projector()
        projector.step(projector.positions(), block_ms=0)
        message = pubsub.get_message(timeout=5)
        while message is not None and message["type"] != "message":
            message = pubsub.get_message(timeout=5)
        assert message is not None
        announced = announcement.decode(message["data"])
        assert set(announced) == set(ids)
        assert all(row is not None and '"lane": "interactive"' in row for row in announced.values())
    finally:
        pubsub.close()
        listener.close()


def test_archive_rows_of_two_lanes_may_share_an_entry_id(engine):
    from projector import archiver

    entry = ("5-0", {"type": "Nonsense", "v": "1"})
    with engine.begin() as conn:
        archiver.write(conn, 0, [entry])
        archiver.write(conn, 0, [entry], lane=ACME_BULK)
        archiver.write(conn, 0, [entry], lane=ACME_BULK)  # again: nothing new
    with engine.connect() as conn:
        found = conn.execute(select(events.c.lane, events.c.entry_id)).all()
    assert sorted(found) == [(ACME_BULK.name, "5-0"), (DEFAULT_LANE.name, "5-0")]


def test_two_projectors_never_apply_an_event_of_any_lane_twice(
    make_projector, redis_client, names, engine
):
    load_lanes(redis_client, names, 20)
    failures = race_catch_up(lambda: make_projector(read_count=4, bulk_read_count=6), 500)
    assert failures == []
    assert rows(engine) == expected(redis_client, names)
    for lane in LANES:
        assert archived_lane(engine, lane) == lane_entries(redis_client, names, lane)
