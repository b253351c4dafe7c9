"""The API's reads of a projection of lanes: checkpoints per partition and lane, the timeline of
a job in a lane other than the default one, and /ready's lag over every lane."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import create_async_engine

from api.logclient import LogClient
from api.projection import ProjectionReader, connection_pool
from api.routes.health import _projector_check
from domain.lanes import BULK, INTERACTIVE
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.submission import Retention
from readmodel import timeline
from tests.integration.test_lanes_projection import backlog, finish, lane_entries, submit_to
from tests.support import async_client

T = TypeVar("T")
BULK_ACME = Lane(BULK, "acme")


def with_reads(
    redis_url: str, database_url: str, names, partitions: int, use: Callable[..., Awaitable[T]]
) -> T:
    """Run `use(projection, log)` against the API's own readers of this test's data."""

    async def main() -> T:
        engine = create_async_engine(database_url)
        pool = connection_pool(database_url, 2)
        projection = ProjectionReader(engine, 5.0, pool)
        await projection.open()
        client = async_client(redis_url)
        retention = Retention(job_index_ttl_s=3600, idempotency_ttl_s=3600)
        log = LogClient(client, names, retention, 5.0, partitions)
        try:
            return await use(projection, log)
        finally:
            await log.close()
            await client.aclose()
            await projection.close()
            await engine.dispose()

    return asyncio.run(main())


def test_the_timeline_of_a_bulk_job_is_its_archive_then_its_lanes_stream(
    make_projector, redis_client, redis_url, database_url, names
):
    job_id = submit_to(redis_client, names, BULK_ACME, "an item of a batch", partition=1)
    submit_to(redis_client, names, BULK_ACME, "another item", partition=1)
    submit(redis_client, names)  # the default lane has entries of its own, at other ids
    make_projector(partition=1).catch_up()
    finish(redis_client, names, BULK_ACME, job_id)  # in the lane's stream only

    async def read(projection: ProjectionReader, log: LogClient) -> dict[str, Any]:
        job = await projection.job(job_id)
        assert job is not None
        lane = timeline.lane_of(job.lane, job.tenant)
        checkpoint, archived = await projection.archived(job_id, lane)
        streamed = await log.streamed(job_id, checkpoint, lane)
        by_index = await log.streamed(job_id, checkpoint)  # the job index names the lane
        default_at, _ = await projection.archived(job_id)
        return {
            "lane": lane,
            "checkpoint": checkpoint,
            "default_checkpoint": default_at,
            "archived": archived,
            "streamed": streamed,
            "by_index": by_index,
        }

    found = with_reads(redis_url, database_url, names, 2, read)
    entries = lane_entries(redis_client, names, BULK_ACME, partition=1)
    assert found["lane"] == BULK_ACME
    assert found["checkpoint"] == entries[1][0]  # the lane's, not the default lane's
    default = lane_entries(redis_client, names, DEFAULT_LANE, partition=1)
    assert found["default_checkpoint"] == default[-1][0]  # the default lane's own
    assert [entry_id for entry_id, _ in found["archived"]] == [entries[0][0]]
    assert found["streamed"] == found["by_index"] == entries[2:]
    events = timeline.timeline(timeline.merge(found["archived"], found["streamed"]), job_id)
    assert [e.type for e in events] == ["JobRequested", "JobStarted", "JobSucceeded"]
    assert events[0].payload["lane"] == BULK and events[0].payload["tenant"] == "acme"


def submit(client, names) -> str:
    return submit_to(client, names, DEFAULT_LANE, "default lane", partition=1)


def test_a_job_not_projected_yet_has_its_request_in_its_timeline(
    redis_client, redis_url, database_url, names
):
    job_id = submit_to(redis_client, names, BULK_ACME, "waiting")

    async def read(projection: ProjectionReader, log: LogClient) -> list:
        checkpoint, archived = await projection.archived(job_id, BULK_ACME)
        return archived + await log.streamed(job_id, checkpoint, BULK_ACME)

    entries = with_reads(redis_url, database_url, names, 1, read)
    assert [fields["type"] for _, fields in entries] == ["JobRequested"]


def test_checkpoints_and_lag_are_per_lane(
    make_projector, redis_client, redis_url, database_url, names
):
    submit_to(redis_client, names, DEFAULT_LANE, "one")
    submit_to(redis_client, names, Lane(INTERACTIVE, "acme"), "two")
    backlog(redis_client, names, BULK_ACME, 30)
    make_projector(bulk_read_count=10).catch_up()
    backlog(redis_client, names, BULK_ACME, 5)  # after the projection: 5 behind
    backlog(redis_client, names, Lane(BULK, "globex"), 7)  # a lane never projected
    submit_to(redis_client, names, DEFAULT_LANE, "later", partition=1)

    async def read(projection: ProjectionReader, log: LogClient) -> dict[str, Any]:
        positions = await projection.checkpoints(2)
        lags = {p: await log.lag_behind(p, at) for p, at in positions.items()}
        checks: dict[str, Any] = {"redis": {"status": "ok"}, "postgres": {"status": "ok"}}
        settings = SimpleNamespace(partitions=2, ready_max_projector_lag_s=3600.0)
        svc = SimpleNamespace(projection=projection, log=log, settings=settings)
        await _projector_check(svc, checks)  # type: ignore[arg-type]
        return {"positions": positions, "lags": lags, "ready": checks["projector"]}

    found = with_reads(redis_url, database_url, names, 2, read)
    positions, lags, ready = found["positions"], found["lags"], found["ready"]
    assert set(positions[0]) == {DEFAULT_LANE, Lane(INTERACTIVE, "acme"), BULK_ACME}
    assert positions[0][BULK_ACME].entries_read == 30
    assert positions[1] == {}
    assert {lane: lag.entries for lane, lag in lags[0].items()} == {
        DEFAULT_LANE: 0,
        Lane(INTERACTIVE, "acme"): 0,
        BULK_ACME: 5,
        Lane(BULK, "globex"): 7,
    }
    assert lags[0][BULK_ACME].seconds >= 0 and lags[0][DEFAULT_LANE].seconds == 0
    assert {lane: lag.entries for lane, lag in lags[1].items()} == {DEFAULT_LANE: 1}
    assert ready["status"] == "ok"
    assert ready["lag_entries"] == 5 + 7 + 1
    assert ready["lag_seconds"] >= max(lag.seconds for lag in lags[0].values())
    bulk_at = positions[0][BULK_ACME].last_entry_id
    assert ready["checkpoints"]["0"] == {
        "interactive:acme": positions[0][Lane(INTERACTIVE, "acme")].last_entry_id,
        "interactive:default": positions[0][DEFAULT_LANE].last_entry_id,
        "bulk:acme": bulk_at,
        "bulk:globex": "0-0",
    }
    assert list(ready["checkpoints"]["0"]) == [
        "interactive:acme",
        "interactive:default",
        "bulk:acme",
        "bulk:globex",
    ]
    assert ready["checkpoints"]["1"] == {"interactive:default": "0-0"}


def test_ready_is_behind_when_a_lane_lags_past_the_limit(
    make_projector, redis_client, redis_url, database_url, names
):
    make_projector().catch_up()
    redis_client.sadd(names.lanes(0), BULK_ACME.name)
    redis_client.xadd(names.lane(0, BULK_ACME), {"type": "Nonsense"}, id="1-0")  # very old

    async def read(projection: ProjectionReader, log: LogClient) -> dict[str, Any]:
        checks: dict[str, Any] = {"redis": {"status": "ok"}, "postgres": {"status": "ok"}}
        settings = SimpleNamespace(partitions=1, ready_max_projector_lag_s=60.0)
        svc = SimpleNamespace(projection=projection, log=log, settings=settings)
        await _projector_check(svc, checks)  # type: ignore[arg-type]
        return dict(checks["projector"])

    ready = with_reads(redis_url, database_url, names, 1, read)
    assert ready["status"] == "behind" and ready["lag_entries"] == 1
    assert ready["checkpoints"] == {"0": {"interactive:default": "0-0", "bulk:acme": "0-0"}}
