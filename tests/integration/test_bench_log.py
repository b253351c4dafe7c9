"""The synthetic logs the bench fills the stream with, and how the bench reads the log's lanes."""

from __future__ import annotations

from datetime import UTC, datetime

from bench.outcomes import Tail, group_progress, heads, lane_streams, settled, summarise
from bench.rebuild import write_log
from domain.events import JobRequested, JobSucceeded
from domain.ids import new_job_id
from domain.job import fold
from domain.lanes import BULK
from eventlog.entries import stream_fields
from eventlog.lanes import DEFAULT_LANE, Lane
from tests.support import log_events

R, S, D = "JobRequested", "JobStarted", "JobSucceeded"


def test_jobs_in_chunks_come_stage_by_stage(redis_client, names):
    assert write_log(redis_client, names, 3, chunk=2) == 12
    events = [event for _, event in log_events(redis_client, names)]
    assert [type(e).__name__ for e in events] == [R, R, S, S, S, S, D, D, R, S, S, D]
    assert [e.job_id for e in events[:2]] == [e.job_id for e in events[6:8]]
    assert {state.status.value for state in fold(events).values()} == {"succeeded"}


def test_one_job_a_chunk_keeps_each_jobs_events_together(redis_client, names):
    write_log(redis_client, names, 2)
    events = [event for _, event in log_events(redis_client, names)]
    assert [type(e).__name__ for e in events] == [R, S, S, D] * 2
    assert len({e.job_id for e in events[:4]}) == 1


# Lanes: the bench reads every lane of every partition, and finds lanes as they appear.


def requested(job_id: str, lane: Lane) -> JobRequested:
    return JobRequested(job_id=job_id, occurred_at=datetime.now(UTC), text="t",
                        model_version="m", tenant=lane.tenant, lane=lane.kind)  # fmt: skip


def succeeded(job_id: str) -> JobSucceeded:
    return JobSucceeded(job_id=job_id, occurred_at=datetime.now(UTC), consumer="c", attempt=1,
                        label="ham", score=0.9, model_version="m", inference_ms=0.1)  # fmt: skip


def append(client, names, lane: Lane, *events, partition: int = 0) -> list[str]:
    """Events into a lane's stream, the lane registered as the submit scripts do."""
    if not lane.is_default:
        client.sadd(names.lanes(partition), lane.name)
    return [str(client.xadd(names.lane(partition, lane), stream_fields(e))) for e in events]


ACME = Lane(BULK, "acme")


def test_the_tail_reads_every_lane_and_the_lanes_that_appear_later(redis_client, names):
    before, during, later = new_job_id(), new_job_id(), new_job_id()
    append(redis_client, names, DEFAULT_LANE, requested(before, DEFAULT_LANE), succeeded(before))
    tail = Tail(redis_client, names, 1, heads(redis_client, names, 1))
    append(redis_client, names, DEFAULT_LANE, requested(during, DEFAULT_LANE), succeeded(during))
    *_, last = append(redis_client, names, ACME, requested(later, ACME), succeeded(later))

    assert tail.read() == 4
    outcomes = summarise(tail, [during, later])
    assert (outcomes.succeeded, outcomes.lost) == (2, 0)
    assert before not in tail.jobs  # from where the lanes were when the tail began
    assert set(outcomes.last_entries) == {(0, DEFAULT_LANE.name), (0, ACME.name)}
    assert outcomes.last_entries[(0, ACME.name)] == last
    assert tail.read() == 0


def test_a_tail_of_some_tenants_reads_only_their_lanes(redis_client, names):
    mine, theirs = new_job_id(), new_job_id()
    tail = Tail(redis_client, names, 1, {}, tenants={"acme"})
    append(redis_client, names, ACME, requested(mine, ACME), succeeded(mine))
    append(redis_client, names, DEFAULT_LANE, requested(theirs, DEFAULT_LANE))
    assert tail.read() == 2
    assert set(tail.jobs) == {mine}


def test_settled_and_progress_count_every_lane(redis_client, names):
    # The default lane is always there, even before its stream.
    assert list(lane_streams(redis_client, names, 1)) == [(0, DEFAULT_LANE.name)]
    append(redis_client, names, DEFAULT_LANE, requested(new_job_id(), DEFAULT_LANE))
    append(redis_client, names, ACME, requested(new_job_id(), ACME), requested(new_job_id(), ACME))
    streams = lane_streams(redis_client, names, 1)
    assert set(streams) == {(0, DEFAULT_LANE.name), (0, ACME.name)}
    for stream in streams.values():
        redis_client.xgroup_create(stream, names.workers_group, "0")
    assert not settled(redis_client, names)

    read = {
        s: redis_client.xreadgroup(names.workers_group, "c", {s: ">"}) for s in streams.values()
    }
    assert group_progress(redis_client, names) == (3, 3)
    default = streams[(0, DEFAULT_LANE.name)]
    redis_client.xack(default, names.workers_group, read[default][0][1][0][0])
    assert settled(redis_client, names, lanes=[(0, DEFAULT_LANE.name)])
    assert not settled(redis_client, names)  # acme's two are still pending
    acme = streams[(0, ACME.name)]
    redis_client.xack(acme, names.workers_group, *(e[0] for e in read[acme][0][1]))
    assert settled(redis_client, names)
    assert group_progress(redis_client, names) == (3, 0)
