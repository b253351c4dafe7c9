"""`python -m projector events show|stats`: what an operator reads of the log."""

from __future__ import annotations

import threading
import time

from domain.ids import new_job_id
from domain.lanes import BULK
from eventlog.lanes import DEFAULT_LANE, Lane
from projector import inspection
from tests.integration.test_lanes_projection import finish, submit_to
from tests.support import append_failure, submit


def test_show_prints_a_jobs_archived_and_streamed_events_in_order(
    make_projector, redis_client, redis_url, database_url, names, redis_cluster
):
    job_id = submit(redis_client, names, "the weekly report")
    submit(redis_client, names, "someone else's job")
    make_projector().catch_up()  # the requests are in the archive now
    append_failure(redis_client, names, job_id, error="boom")  # only in the stream
    lines: list[str] = []
    assert inspection.show(redis_url, redis_cluster, database_url, names, job_id, lines.append)
    assert [line.split()[2] for line in lines] == ["JobRequested", "JobFailed"]
    assert all(f" {job_id} " in line for line in lines)
    assert "error=boom" in lines[1]


def test_show_says_when_a_job_has_no_events(
    redis_client, redis_url, database_url, names, redis_cluster
):
    submit(redis_client, names, "a job")
    lines: list[str] = []
    assert not inspection.show(
        redis_url, redis_cluster, database_url, names, new_job_id(), lines.append
    )
    assert lines == []


def test_stats_count_the_stream_the_groups_and_the_projection(
    make_projector, redis_client, engine, names
):
    for text in ("one", "two", "three"):
        submit(redis_client, names, text)
    redis_client.xgroup_create(names.events(0), names.workers_group, "0")
    make_projector().catch_up()
    lines: list[str] = []
    inspection.stats(redis_client, engine, names, [0], lines.append)
    lane = f"(lane {DEFAULT_LANE.name})"
    assert lines[0].startswith(f"stream {names.events(0)} {lane}: length 3, added 3")
    assert lines[1].startswith(f"  group {names.workers_group}: consumers 0, lag 3, pending 0")
    assert lines[2].startswith("  projection jobs: at ") and lines[2].endswith("3 read, 0 behind")
    assert lines[3] == f"dead letters {names.dead_letters(0)}: 0"
    assert lines[4] == "archive: 3 events"


def test_stats_report_every_lane_interactive_first(make_projector, redis_client, engine, names):
    submit(redis_client, names, "default")
    bulk = Lane(BULK, "acme")
    submit_to(redis_client, names, bulk, "one of a batch")
    submit_to(redis_client, names, bulk, "another")
    make_projector().catch_up()
    submit_to(redis_client, names, bulk, "not projected yet")
    lines: list[str] = []
    inspection.stats(redis_client, engine, names, [0], lines.append)
    assert lines[0].startswith(f"stream {names.events(0)} (lane interactive:default): length 1")
    assert lines[1].endswith("1 read, 0 behind")
    bulk_stream = names.lane(0, bulk)
    assert lines[2].startswith(f"stream {bulk_stream} (lane bulk:acme): length 3, added 3")
    assert lines[3].endswith("2 read, 1 behind")
    assert lines[4] == f"dead letters {names.dead_letters(0)}: 0"
    assert lines[5] == "archive: 3 events"


def test_show_reads_a_bulk_jobs_lane(
    make_projector, redis_client, redis_url, database_url, names, redis_cluster
):
    bulk = Lane(BULK, "acme")
    job_id = submit_to(redis_client, names, bulk, "an item of a batch", partition=1)
    submit_to(redis_client, names, bulk, "another item", partition=1)
    make_projector(partition=1).catch_up()
    finish(redis_client, names, bulk, job_id)  # only in the lane's stream
    lines: list[str] = []
    assert inspection.show(redis_url, redis_cluster, database_url, names, job_id, lines.append)
    assert [line.split()[2] for line in lines] == ["JobRequested", "JobStarted", "JobSucceeded"]
    # Known by its job index too, before anything is projected.
    other = submit_to(redis_client, names, Lane(BULK, "globex"), "unprojected", partition=1)
    lines.clear()
    assert inspection.show(redis_url, redis_cluster, database_url, names, other, lines.append)
    assert [line.split()[2] for line in lines] == ["JobRequested"]


def test_tail_follows_every_lane(redis_client, names):
    bulk = Lane(BULK, "acme")
    submit_to(redis_client, names, bulk, "before the tail: not shown")
    stop = threading.Event()
    lines: list[str] = []
    tailing = threading.Thread(
        target=inspection.tail,
        args=(redis_client, names, [0], stop, lines.append, 0.05),
    )
    tailing.start()
    try:
        time.sleep(0.2)
        first = submit(redis_client, names, "interactive")
        second = submit_to(redis_client, names, bulk, "bulk")
        third = submit_to(redis_client, names, Lane(BULK, "newcomer"), "a lane found later")
        deadline = time.monotonic() + 10
        while len(lines) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        tailing.join(10)
    assert sorted((line.split()[0], line.split()[5]) for line in lines) == sorted(
        [
            ("interactive:default", first),
            ("bulk:acme", second),
            ("bulk:newcomer", third),
        ]
    )
