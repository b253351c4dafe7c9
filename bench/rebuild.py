"""Measure `projector rebuild` speed: write a synthetic log, project it live, then rebuild.

    .venv/bin/python -m bench.rebuild --jobs 50000   # 4 events a job: 200k events

Uses REDIS_URL and DATABASE_URL (a database with migrations applied) and a fresh key prefix,
deleted at the end. Prints events per second for the live catch-up and for the rebuild, read
once from the stream and once from the archive after trimming. The synthetic log is the default
tenant's interactive jobs, so it goes to partition 0's default lane; what is trimmed, counted
and deleted afterwards is every lane of the partition (eventlog.lanes), whatever appeared.
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime

import redis
from sqlalchemy import create_engine, delete, text

from bench.outcomes import lane_streams
from domain.events import Event, JobRequested, JobStarted, JobSucceeded, encode
from domain.ids import new_job_id
from eventlog.lanes import DEFAULT_LANE
from eventlog.names import Names
from projector import retention
from projector.rebuild import Rebuild, RebuildOptions
from projector.runner import Projector
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore
from readmodel.tables import events


def write_log(client: redis.Redis, names: Names, jobs: int, chunk: int = 1) -> int:
    """`jobs` jobs of four events each (JobRequested, JobStarted twice, JobSucceeded), in their
    lane's stream (the default one of partition 0). With `chunk` 1 a job's events sit together;
    with more, `chunk` jobs' requests come first, then their starts, then their outcomes, as
    consumers working in batches write them."""
    now = datetime.now(UTC)
    stream = names.lane(0, DEFAULT_LANE)  # _events' requests are the default tenant's, alone
    pipe = client.pipeline(transaction=False)
    for first in range(0, jobs, chunk):
        group = [_events(new_job_id(), i, now) for i in range(first, min(first + chunk, jobs))]
        for stage in range(4):
            for job_events in group:
                pipe.xadd(stream, encode(job_events[stage]))  # type: ignore[arg-type]
        if len(pipe) >= 4000:
            pipe.execute()
    pipe.execute()
    return jobs * 4


def _events(job: str, i: int, now: datetime) -> tuple[Event, ...]:
    return (
        JobRequested(job_id=job, occurred_at=now, text=f"message {i}", model_version="m"),
        JobStarted(job_id=job, occurred_at=now, consumer="c", attempt=1),
        JobStarted(job_id=job, occurred_at=now, consumer="c", attempt=1),
        JobSucceeded(job_id=job, occurred_at=now, consumer="c", attempt=1, label="ham",
                     score=0.9, probabilities={"ham": 0.9, "spam": 0.1},
                     model_version="m", inference_ms=1.0),
    )  # fmt: skip


def timed(label: str, count: int, run) -> None:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    run()
    seconds = time.perf_counter() - began
    print(f"{label}: {count} events in {seconds:.1f} s = {count / seconds:.0f} events/s")


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--jobs", type=int, default=50_000)
    args.add_argument("--batch", type=int, default=2000)
    options = args.parse_args()
    names = Names(f"bench-{uuid.uuid4().hex[:8]}")
    settings = ProjectorSettings(stream_prefix=names.prefix, read_count=options.batch)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    engine = create_engine(settings.database_url)
    with engine.begin() as conn:  # a clean projection for the run
        conn.execute(text("TRUNCATE jobs, projector_checkpoints"))
        conn.execute(delete(events))
    try:
        count = write_log(client, names, options.jobs)
        live = ProjectionStore(engine, "jobs")
        timed("live catch-up", count, Projector(settings, client, live).catch_up)
        rebuild = RebuildOptions(batch=options.batch, fresh=True)
        timed("rebuild from stream", count, Rebuild(engine, client, names, rebuild).run)
        streams = lane_streams(client, names, 1).values()
        for stream in streams:  # the trim keeps what a group has not delivered: nothing here
            if client.exists(stream):
                client.xgroup_create(stream, names.workers_group, "$")
        retention.trim(client, names, live)
        held = sum(client.xlen(stream) for stream in streams)
        print(f"trimmed; the lanes hold {held} entries")
        timed("rebuild from archive", count, Rebuild(engine, client, names, rebuild).run)
    finally:
        client.delete(*lane_streams(client, names, 1).values(), names.lanes(0))
        client.close()
        engine.dispose()


if __name__ == "__main__":
    main()
