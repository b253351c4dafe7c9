"""A tenant's cap of unfinished jobs, on a real Redis: SUBMIT counts and refuses in the lane's
slot, FINISH counts down once per job, however often it is called."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from domain.events import JobRequested
from domain.ids import new_job_id
from domain.lanes import BULK, INTERACTIVE
from eventlog.group import ConsumerGroup
from eventlog.lanes import Lane
from eventlog.names import Names
from eventlog.runs import Verdict
from eventlog.submission import BatchEntry, Retention, Submission, Submitter
from tests.support import MODEL_VERSION, async_client, succeeded

RETENTION = Retention(job_index_ttl_s=3600, idempotency_ttl_s=3600)
TENANT = "capped"


def request(kind: str, tenant: str = TENANT) -> JobRequested:
    return JobRequested(
        job_id=new_job_id(0),
        occurred_at=datetime.now(UTC),
        text="count me",
        model_version=MODEL_VERSION,
        tenant=tenant,
        lane=kind,
    )


def submit(redis_url: str, names: Names, events: list[JobRequested], cap: int) -> list[Submission]:
    async def run() -> list[Submission]:
        client = async_client(redis_url)
        try:
            submitter = Submitter(client, names, RETENTION, 1)
            return [await submitter.submit(event, None, "", cap) for event in events]
        finally:
            await client.aclose()

    return asyncio.run(run())


def submit_batch(
    redis_url: str, names: Names, events: list[JobRequested], cap: int
) -> list[Submission]:
    async def run() -> list[Submission]:
        client = async_client(redis_url)
        try:
            entries = [BatchEntry(event, None, "") for event in events]
            return await Submitter(client, names, RETENTION, 1).submit_batch(entries, cap)
        finally:
            await client.aclose()

    return asyncio.run(run())


def count(redis_client, names: Names, kind: str, tenant: str = TENANT) -> int:
    return int(redis_client.get(names.queued(0, Lane(kind, tenant))) or 0)


def test_the_cap_counts_both_lanes_of_the_tenant_and_refuses_past_it(
    redis_url, redis_client, names
):
    singles = submit(redis_url, names, [request(INTERACTIVE) for _ in range(2)], cap=5)
    assert all(s.created for s in singles)
    batch = submit_batch(redis_url, names, [request(BULK) for _ in range(5)], cap=5)
    assert [s.created for s in batch] == [True, True, True, False, False]
    assert [s.refused for s in batch] == [False, False, False, True, True]
    assert count(redis_client, names, INTERACTIVE) == 2 and count(redis_client, names, BULK) == 3
    (one_more,) = submit(redis_url, names, [request(INTERACTIVE)], cap=5)
    assert one_more.refused and not one_more.created
    # Nothing of a refused job is on the log.
    bulk = redis_client.xrange(names.lane(0, Lane(BULK, TENANT)))
    assert len(bulk) == 3
    assert redis_client.get(names.job(one_more.job_id)) is None
    # Another tenant has its own count; without a cap, jobs are counted all the same.
    (other,) = submit(redis_url, names, [request(INTERACTIVE, "roomy")], cap=5)
    assert other.created and count(redis_client, names, INTERACTIVE, "roomy") == 1
    submit(redis_url, names, [request(INTERACTIVE) for _ in range(3)], cap=0)
    assert count(redis_client, names, INTERACTIVE) == 5


def test_finish_counts_down_once_per_job_and_never_below_zero(redis_url, redis_client, names):
    lane = Lane(BULK, TENANT)
    stream = names.lane(0, lane)
    jobs = submit_batch(redis_url, names, [request(BULK) for _ in range(3)], cap=3)
    assert count(redis_client, names, BULK) == 3
    group = ConsumerGroup(
        redis_client,
        stream,
        names.workers_group,
        "c1",
        names.dead_letters(0),
        unfinished=names.queued(0, lane),
    )
    group.ensure()
    read = group.read(10, None)
    assert len(read) == 3
    (first_id, first), (second_id, second), (third_id, third) = read
    assert group.finish(first_id, succeeded(first["job_id"])).verdict is Verdict.WRITTEN
    # No longer this one's:
    assert group.finish(first_id, succeeded(first["job_id"])).verdict is Verdict.SUPERSEDED
    assert count(redis_client, names, BULK) == 2
    # A job sent to the dead letters finishes too.
    letter = {"reason": "test"}
    assert group.finish(second_id, succeeded(second["job_id"]), letter).verdict is Verdict.WRITTEN
    assert count(redis_client, names, BULK) == 1
    assert len(redis_client.xrange(names.dead_letters(0))) == 1
    # Then there is room again.
    (again,) = submit(redis_url, names, [request(INTERACTIVE)], cap=3)
    assert again.created
    redis_client.set(names.queued(0, lane), 0)  # as for a job accepted before counts existed
    assert group.finish(third_id, succeeded(third["job_id"])).verdict is Verdict.WRITTEN
    assert count(redis_client, names, BULK) == 0
    assert [s.created for s in jobs] == [True, True, True]


def test_a_keyed_job_refused_by_the_cap_is_appended_by_a_later_retry(redis_url, names):
    event = request(INTERACTIVE)

    async def run(cap: int) -> Submission:
        client = async_client(redis_url)
        try:
            return await Submitter(client, names, RETENTION, 1).submit(event, "retry-me", "fp", cap)
        finally:
            await client.aclose()

    submit(redis_url, names, [request(BULK)], cap=0)
    refused = asyncio.run(run(1))
    assert refused.refused
    accepted = asyncio.run(run(2))
    assert accepted.job_id == event.job_id and not accepted.refused
