"""The waiter registry and the long-poll built on it, without servers: fake reads, fake clients."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

from api.auth import TRUSTED
from api.longpoll import job_within, wait_for_job
from api.waiters import Waiters
from domain.events import JobRequested
from domain.ids import new_job_id
from domain.job import JobState, JobStatus, evolve
from readmodel import rows

LONG_S = 30.0  # never reached: every test that waits this long is woken first


def queued(job_id: str) -> JobState:
    event = JobRequested(job_id=job_id, occurred_at=datetime.now(UTC), text="t", model_version="m")
    return evolve(None, event)


class FakeJobs:
    """The projection as a dict the test changes; counts the reads."""

    def __init__(self, waiters: Waiters) -> None:
        self.rows: dict[str, JobState] = {}
        self.reads = 0
        self.services = SimpleNamespace(
            waiters=waiters,
            projection=SimpleNamespace(job=self._job),
            log=SimpleNamespace(accepted_job=self._nothing),
        )

    async def _job(self, job_id: str) -> JobState | None:
        self.reads += 1
        return self.rows.get(job_id)

    async def _nothing(self, _job_id: str) -> None:
        return None

    def finish(self, job_id: str) -> None:
        self.rows[job_id] = replace(self.rows[job_id], status=JobStatus.SUCCEEDED)


def one_queued_job() -> tuple[Waiters, FakeJobs, str]:
    """Waiters, and a projection holding one queued job."""
    waiters = Waiters()
    jobs = FakeJobs(waiters)
    job_id = new_job_id()
    jobs.rows[job_id] = queued(job_id)
    return waiters, jobs, job_id


async def silent_client() -> dict:
    """A client that never goes away."""
    await asyncio.Event().wait()
    return {}


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


# The registry


def test_a_wake_reaches_the_watches_of_its_job_only():
    async def scenario() -> None:
        waiters = Waiters()
        with waiters.watch("a") as a, waiters.watch("a") as a2, waiters.watch("b") as b:
            assert waiters.wake(["a", "unknown"]) == 2
            assert await a.wait(deadline_in(LONG_S))
            assert await a2.wait(deadline_in(LONG_S))
            assert not await b.wait(deadline_in(0.01))

    asyncio.run(scenario())


def test_a_wake_before_the_wait_is_not_lost_and_is_used_once():
    async def scenario() -> None:
        waiters = Waiters()
        with waiters.watch("a") as watch:
            waiters.wake(["a"])
            assert await watch.wait(deadline_in(LONG_S))
            assert not await watch.wait(deadline_in(0.01))

    asyncio.run(scenario())


def test_a_watch_is_removed_however_its_block_ends():
    waiters = Waiters()
    with waiters.watch("a"), waiters.watch("a"):
        assert len(waiters) == 2
    assert len(waiters) == 0
    try:
        with waiters.watch("b"):
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    assert len(waiters) == 0
    assert waiters.wake(["a", "b"]) == 0


def test_wake_all_wakes_every_watch():
    async def scenario() -> None:
        waiters = Waiters()
        with waiters.watch("a") as a, waiters.watch("b") as b:
            assert waiters.wake_all() == 2
            assert await a.wait(deadline_in(LONG_S))
            assert await b.wait(deadline_in(LONG_S))

    asyncio.run(scenario())


# The long-poll


def test_a_wake_answers_with_the_terminal_job():
    async def scenario() -> None:
        waiters, jobs, job_id = one_queued_job()
        waiting = asyncio.create_task(
            job_within(jobs.services, TRUSTED, job_id, LONG_S, silent_client)
        )
        await asyncio.sleep(0)  # registered and read
        jobs.finish(job_id)
        waiters.wake([job_id])
        state = await waiting
        assert state is not None and state.status is JobStatus.SUCCEEDED
        assert jobs.reads == 2  # once before waiting, once after the wake: no polling
        assert len(waiters) == 0

    asyncio.run(scenario())


def finished_row(state: JobState) -> str:
    """The row the projector announces for `state`, once terminal."""
    done = replace(state, status=JobStatus.SUCCEEDED, finished_at=datetime.now(UTC))
    return rows.to_json(rows.to_row(done, "1-0"))


def test_a_wake_with_the_row_answers_without_reading_the_job_again():
    async def scenario() -> None:
        waiters, jobs, job_id = one_queued_job()
        waiting = asyncio.create_task(
            job_within(jobs.services, TRUSTED, job_id, LONG_S, silent_client)
        )
        await asyncio.sleep(0)
        waiters.wake([job_id], {job_id: finished_row(jobs.rows[job_id])})
        state = await waiting
        assert state is not None and state.status is JobStatus.SUCCEEDED
        assert state.created_at == jobs.rows[job_id].created_at
        assert jobs.reads == 1  # before waiting only

    asyncio.run(scenario())


def test_a_row_that_does_not_fit_the_wait_is_read_instead():
    async def scenario() -> None:
        waiters, jobs, job_id = one_queued_job()
        other = finished_row(queued(new_job_id()))
        for row in ("{not json", '["a list"]', "{}", other):
            with waiters.watch(job_id) as watch:
                waiters.wake([job_id], {job_id: row})
                state = await wait_for_job(
                    jobs.services, watch, queued(job_id), 0.01, silent_client
                )
            assert state is not None and state.status is JobStatus.QUEUED  # read: still queued
        assert jobs.reads == 8  # each: once after the wake, once when the time ran out

    asyncio.run(scenario())


def test_a_spurious_wake_goes_back_to_waiting():
    async def scenario() -> None:
        waiters, jobs, job_id = one_queued_job()
        waiting = asyncio.create_task(
            job_within(jobs.services, TRUSTED, job_id, LONG_S, silent_client)
        )
        await asyncio.sleep(0)
        waiters.wake_all()  # as after a reconnect: the job is read again, still queued
        await asyncio.sleep(0.01)
        assert not waiting.done()
        jobs.finish(job_id)
        waiters.wake([job_id])
        state = await waiting
        assert state is not None and state.status is JobStatus.SUCCEEDED

    asyncio.run(scenario())


def test_when_the_time_runs_out_the_job_is_read_once_more():
    async def scenario() -> None:
        waiters, jobs, job_id = one_queued_job()
        with waiters.watch(job_id) as watch:
            jobs.finish(job_id)  # the announcement was lost
            state = await wait_for_job(jobs.services, watch, queued(job_id), 0.05, silent_client)
        assert state is not None and state.status is JobStatus.SUCCEEDED
        assert jobs.reads == 1

    asyncio.run(scenario())


def test_a_terminal_or_unknown_job_or_no_wait_answers_at_once():
    async def scenario() -> None:
        waiters = Waiters()
        jobs = FakeJobs(waiters)
        done, pending = new_job_id(), new_job_id()
        jobs.rows[done] = queued(done)
        jobs.finish(done)
        jobs.rows[pending] = queued(pending)
        assert (
            await job_within(jobs.services, TRUSTED, done, LONG_S, silent_client)
        ).status == "succeeded"
        assert await job_within(jobs.services, TRUSTED, new_job_id(), LONG_S, silent_client) is None
        assert (
            await job_within(jobs.services, TRUSTED, pending, 0, silent_client)
        ).status == "queued"
        assert len(waiters) == 0

    asyncio.run(scenario())


def test_a_client_that_goes_away_ends_the_wait_and_its_watch():
    async def scenario() -> None:
        waiters, jobs, job_id = one_queued_job()
        gone = asyncio.Event()
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        waiting = asyncio.create_task(job_within(jobs.services, TRUSTED, job_id, LONG_S, receive))
        await asyncio.sleep(0.01)
        assert len(waiters) == 1
        gone.set()
        state = await waiting
        assert state is not None and state.status is JobStatus.QUEUED
        assert len(waiters) == 0

    asyncio.run(scenario())
