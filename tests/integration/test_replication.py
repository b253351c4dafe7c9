"""Writes that wait for replicas (Redis WAIT): on a server with none, they are done on the master
and still reported as not replicated; nothing is lost or doubled by the refusal. The cluster
with replicas is tests/e2e/test_failover.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from domain.events import JobStarted
from eventlog import scripts
from eventlog.errors import NotReplicatedError
from eventlog.group import ConsumerGroup, GroupOptions
from eventlog.replication import ReplicatedWriter, ReplicaWait
from eventlog.runs import Verdict
from eventlog.submission import submit_args
from tests.integration.test_batch_log import entry
from tests.support import async_client, job_events, one_server, submit, succeeded

pytestmark = one_server("needs a server without replicas")

WAIT = GroupOptions(replicas=1, replicas_timeout_ms=50)


def group(redis_client, names, options: GroupOptions = WAIT) -> ConsumerGroup:
    made = ConsumerGroup(
        redis_client,
        names.events(0),
        names.workers_group,
        "c",
        names.dead_letters(0),
        options,
    )
    made.ensure()
    return made


def test_an_append_without_its_replica_is_written_and_refused(redis_client, names):
    job_id = submit(redis_client, names, "hello")
    started = JobStarted(job_id=job_id, occurred_at=datetime.now(UTC), consumer="c", attempt=1)
    with pytest.raises(NotReplicatedError, match="0 of 1 replicas"):
        group(redis_client, names).append(started)
    # WAIT does not undo the write: the master has it, and so the log as read.
    assert [type(e).__name__ for e in job_events(redis_client, names, job_id)] == [
        "JobRequested",
        "JobStarted",
    ]


def test_a_finish_without_its_replica_is_refused_and_taken_once(redis_client, names):
    job_id = submit(redis_client, names, "hello")
    waiting = group(redis_client, names)
    [(entry_id, _)] = waiting.read(10, 10)
    outcome = succeeded(job_id)
    with pytest.raises(NotReplicatedError):
        waiting.finish(entry_id, outcome)
    # The retry the worker makes finds the entry acknowledged: no second outcome.
    (again,) = group(redis_client, names, GroupOptions()).finish_all([(entry_id, outcome)])
    assert again.verdict is Verdict.SUPERSEDED
    outcomes = [e for e in job_events(redis_client, names, job_id) if type(e) is type(outcome)]
    assert len(outcomes) == 1


def test_a_worker_waits_out_missing_replicas_instead_of_dying(
    make_worker_and_runner, redis_client, names
):
    worker, _ = make_worker_and_runner("w", outcome_replicas=1, outcome_replicas_timeout_ms=20)
    submit(redis_client, names, "hello")
    with pytest.raises(NotReplicatedError):
        worker.poll_once()  # run() catches this like Redis being away, and tries again


def test_a_submission_without_its_replica_is_refused(redis_url, names):
    event = entry("keyed").event

    async def append() -> None:
        client = async_client(redis_url)
        writer = ReplicatedWriter(client, ReplicaWait(replicas=1, timeout_ms=50))
        try:
            keys, argv = submit_args(names, event, 60)
            await writer.run([(scripts.SUBMIT, keys, argv)])
        finally:
            await writer.close()
            await client.aclose()

    with pytest.raises(NotReplicatedError):
        asyncio.run(append())
