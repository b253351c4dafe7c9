"""The synthetic logs the bench fills the stream with."""

from __future__ import annotations

from bench.rebuild import write_log
from domain.job import fold
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
