"""Trimming and rebuilding a log of lanes: each lane trimmed only below what it has archived,
delivered to its workers group and had acknowledged; a rebuild from each lane's archive and
stream; a lane that the live projector starts during a rebuild is in the swapped table."""

from __future__ import annotations

from sqlalchemy import text

from domain.lanes import BULK, INTERACTIVE
from eventlog.lanes import DEFAULT_LANE, Lane
from projector import retention
from projector.rebuild import Rebuild
from projector.store import ProjectionStore
from tests.integration.test_lanes_projection import (
    expected,
    lane_columns,
    lane_entries,
    load_lanes,
    rows,
    submit_to,
)

ACME = Lane(BULK, "acme")
GLOBEX = Lane(BULK, "globex")


def consume(client, names, lane: Lane, ack_upto: int | None = None) -> list[str]:
    """Read every entry of a lane through its workers group; acknowledge the first `ack_upto`."""
    stream = names.lane(0, lane)
    client.xgroup_create(stream, names.workers_group, "0", mkstream=True)
    reply = client.xreadgroup(names.workers_group, "w", {stream: ">"}, count=100_000)
    ids = [entry_id for entry_id, _ in reply[0][1]]
    done = ids if ack_upto is None else ids[:ack_upto]
    if done:
        client.xack(stream, names.workers_group, *done)
    return ids


def first_id(client, names, lane: Lane) -> str:
    return client.xrange(names.lane(0, lane), count=1)[0][0]


def test_each_lane_is_trimmed_to_its_own_bounds(make_projector, redis_client, names, engine):
    load_lanes(redis_client, names, 6, lanes=(DEFAULT_LANE, ACME, GLOBEX))
    consume(redis_client, names, DEFAULT_LANE)
    acme_ids = consume(redis_client, names, ACME, ack_upto=5)  # the 6th and on pending
    projector = make_projector()
    projector.catch_up()
    live = ProjectionStore(engine, "jobs")
    bounds = retention.trim_bounds(redis_client, names, live)
    # No workers group on globex's lane: nothing of it was handed to a worker; not trimmed.
    assert set(bounds) == {DEFAULT_LANE, ACME}
    removed = retention.trim_lanes(redis_client, names, live)
    # All acknowledged: all but the checkpoint's own entry went.
    assert len(lane_entries(redis_client, names, DEFAULT_LANE)) == 1
    assert first_id(redis_client, names, ACME) == acme_ids[5]  # its oldest pending entry
    assert removed[ACME] == 5
    assert len(lane_entries(redis_client, names, GLOBEX)) == 6 + 2 * 4


def test_a_lane_is_never_trimmed_past_what_it_archived(make_projector, redis_client, names, engine):
    load_lanes(redis_client, names, 6, lanes=(DEFAULT_LANE, ACME))
    projector = make_projector(bulk_read_count=5)
    positions = projector.positions()
    for _ in range(2):  # the interactive lane, then one round of the bulk lane: 5 entries
        positions = projector.step(positions, block_ms=0)
    assert positions[ACME].entries_read == 5
    consume(redis_client, names, DEFAULT_LANE)
    consume(redis_client, names, ACME)  # all delivered and acknowledged
    retention.trim(redis_client, names, ProjectionStore(engine, "jobs"))
    assert first_id(redis_client, names, ACME) == positions[ACME].last_entry_id


def test_a_lane_never_projected_is_not_trimmed(make_projector, redis_client, names, engine):
    make_projector().catch_up()
    submit_to(redis_client, names, ACME, "delivered, not projected")
    consume(redis_client, names, ACME)
    assert retention.trim_bounds(redis_client, names, ProjectionStore(engine, "jobs")) == {}


def test_the_live_projectors_periodic_trim_trims_every_lane(
    make_projector, redis_client, names, engine
):
    load_lanes(redis_client, names, 4, lanes=(DEFAULT_LANE, ACME))
    for lane in (DEFAULT_LANE, ACME):
        consume(redis_client, names, lane)
    projector = make_projector(trim_interval_s=0.001)
    projector.catch_up()
    projector._next_trim = 0
    projector._maybe_trim()
    for lane in (DEFAULT_LANE, ACME):  # all but the checkpoint's own entry
        assert len(lane_entries(redis_client, names, lane)) == 1


def test_a_rebuild_after_trimming_reads_each_lanes_archive(
    make_projector, make_rebuild, redis_client, names, engine
):
    load_lanes(redis_client, names, 8, lanes=(DEFAULT_LANE, ACME, GLOBEX))
    for lane in (DEFAULT_LANE, ACME, GLOBEX):
        consume(redis_client, names, lane)
    make_projector().catch_up()
    assert retention.trim(redis_client, names, ProjectionStore(engine, "jobs")) > 0
    load_lanes(redis_client, names, 3, lanes=(ACME,))  # after the trim: only in the stream
    make_projector().catch_up()
    truth, columns = rows(engine), lane_columns(engine)
    with engine.begin() as conn:  # damage the live table: the rebuild must not copy it
        conn.execute(text("UPDATE jobs SET status = 'queued', attempts = 99, lane = 'x'"))
    make_rebuild(batch=7).run()
    assert rows(engine) == truth
    assert lane_columns(engine) == columns


def test_a_lane_started_live_just_before_the_swap_is_in_the_swapped_table(
    make_projector, make_rebuild, redis_client, names, engine, monkeypatch
):
    load_lanes(redis_client, names, 5, lanes=(DEFAULT_LANE, ACME))
    make_projector().catch_up()
    late = Lane(INTERACTIVE, "late")
    real_swap = Rebuild._swap

    def swap_after_a_new_lane(self, at):  # type: ignore[no-untyped-def]
        # After the rebuild caught up with every lane it knew of, before it locks: the live
        # projector starts a lane the rebuild has never seen.
        if not any(lane == late for _, lane in at):
            submit_to(redis_client, names, late, "a new tenant's first job")
            make_projector().catch_up()
        return real_swap(self, at)

    monkeypatch.setattr(Rebuild, "_swap", swap_after_a_new_lane)
    done = make_rebuild(batch=4).run()
    assert late in done[0]
    assert rows(engine) == expected_with(redis_client, names, late)
    assert "late" in {tenant for tenant, _ in lane_columns(engine).values()}


def expected_with(client, names, lane: Lane) -> dict:
    from domain.events import decode
    from domain.job import fold

    extra = [decode(fields) for _, fields in lane_entries(client, names, lane)]
    known = expected(client, names)
    return {**known, **fold(extra)}
