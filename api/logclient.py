"""The API's side of the event log: accepting jobs, reading a job the projector has not reached
yet, and how far behind the log's head a projection is. Every call is guarded (api.guard)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

from api.guard import guarded, guarded_again
from domain.events import JobRequested, decode
from domain.ids import partition_of
from domain.job import JobState, evolve
from eventlog.connection import AsyncClient
from eventlog.entries import Entry
from eventlog.lanes import Lane, known_lanes_async, served_first
from eventlog.names import Names
from eventlog.placement import Placement
from eventlog.positions import entry_ms
from eventlog.replication import ReplicatedWriter, ReplicaWait
from eventlog.submission import BatchEntry, Retention, Submission, Submitter, indexed_at
from readmodel import timeline
from readmodel.checkpoints import Checkpoint

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProjectorLag:
    entries: int
    seconds: float


class LogClient:
    def __init__(
        self,
        client: AsyncClient,
        names: Names,
        retention: Retention,
        timeout_s: float,
        partitions: int = 1,
        wait: ReplicaWait | None = None,
    ) -> None:
        self._redis = client
        self._names = names
        self._timeout_s = timeout_s
        self.placement = Placement(partitions)
        self._submitter = Submitter(client, names, retention, partitions, wait)

    @property
    def replicated(self) -> ReplicatedWriter | None:
        """The writer that waits for SUBMIT_REPLICAS replicas (None when that is 0), shared by
        every write of this process that must."""
        return self._submitter.replicated

    async def _call(self, awaitable: Awaitable[T]) -> T:
        async with guarded("redis", self._timeout_s):
            return await awaitable

    async def submit(
        self, event: JobRequested, idempotency_key: str | None, fingerprint: str, cap: int = 0
    ) -> Submission:
        return await self._again_once(
            lambda: self._submitter.submit(event, idempotency_key, fingerprint, cap)
        )

    async def submit_batch(self, entries: Sequence[BatchEntry], cap: int = 0) -> list[Submission]:
        """Accept every entry; what happened to each, in order."""
        return await self._again_once(lambda: self._submitter.submit_batch(entries, cap))

    async def _again_once(self, attempt: Callable[[], Awaitable[T]]) -> T:
        return await guarded_again("redis", self._timeout_s, attempt)

    async def accepted_job(self, job_id: str) -> JobState | None:
        """The job as its JobRequested shows it, for jobs the projector has not reached yet."""
        return await self._again_once(lambda: self._accepted_job(job_id))

    async def key_fingerprint(self, key: str, tenant: str) -> str | None:
        """The request fingerprint a tenant's Idempotency-Key is bound to; None when unbound."""
        name = self._names.idempotency(key, tenant)
        found = await self._again_once(lambda: self._redis.hget(name, "fingerprint"))
        return cast(str | None, found)

    async def _accepted_job(self, job_id: str) -> JobState | None:
        indexed = await self._redis.get(self._names.job(job_id))
        if indexed is None:
            return None
        entry_id, lane = indexed_at(cast(str, indexed))
        stream = self._names.lane(partition_of(job_id), lane)
        entries = await self._redis.xrange(stream, entry_id, entry_id)
        if not entries:
            return None
        fields = cast(dict[str, str], entries[0][1])
        return evolve(None, decode(fields))

    async def streamed(self, job_id: str, checkpoint: str, lane: Lane | None = None) -> list[Entry]:
        """The job's entries in its lane's stream after `checkpoint` (that lane's), for its
        timeline; without `lane`, the one the job index names."""
        return await self._call(
            timeline.streamed(self._redis, self._names, job_id, checkpoint, lane)
        )

    async def ping(self) -> None:
        """Redis answers, and would take a submission: the SUBMIT script's keys can be used
        together where they live (a plain PING answers on a topology where every submit fails)."""
        await self._call(self._redis.ping())
        await self._call(self._submitter.probe())

    async def lag_behind(
        self, partition: int, checkpoints: Mapping[Lane, Checkpoint]
    ) -> dict[Lane, ProjectorLag]:
        """How far a projection whose lanes of `partition` are at `checkpoints` (a lane missing
        there: at its start) is behind the head of each of them: every lane of the partition,
        the ones registered in the log and those with a checkpoint. Two pipelined round trips
        after the lanes' names: each lane's oldest entry not projected, then the count of the
        lanes behind."""
        lanes = await self._call(known_lanes_async(self._redis, self._names, partition))
        lanes = served_first(list(set(lanes) | set(checkpoints)))
        at = {lane: checkpoints.get(lane, Checkpoint()) for lane in lanes}
        streams = {lane: self._names.lane(partition, lane) for lane in lanes}
        pipe = self._redis.pipeline(transaction=False)
        for lane in lanes:
            pipe.xrange(streams[lane], f"({at[lane].last_entry_id}", "+", count=1)
        oldest = dict(zip(lanes, await self._call(pipe.execute()), strict=True))
        behind = [lane for lane in lanes if oldest[lane]]
        added: dict[Lane, int] = {}
        if behind:
            pipe = self._redis.pipeline(transaction=False)
            for lane in behind:
                pipe.xinfo_stream(streams[lane])
            infos = await self._call(pipe.execute())
            added = {lane: info["entries-added"] for lane, info in zip(behind, infos, strict=True)}
        now_ms = time.time() * 1000
        lags = {}
        for lane in lanes:
            if lane not in added:
                lags[lane] = ProjectorLag(0, 0.0)
                continue
            waiting_ms = now_ms - entry_ms(cast(str, oldest[lane][0][0]))
            entries = max(added[lane] - at[lane].entries_read, 0)
            lags[lane] = ProjectorLag(entries, max(waiting_ms, 0) / 1000)
        return lags

    async def close(self) -> None:
        await self._submitter.close()
