"""Accepting jobs onto the log: one (SUBMIT) or a batch (BATCH_SUBMIT per partition).

A job goes to the partition its id names. The append and the job index (job id -> entry id, for
reads before the projector has the job) are one script in the partition's slot, which appends a
job id at most once.

An Idempotency-Key is bound first (RESERVE, in the key's own slot) to the new job's id and the
request's fingerprint, then the job is appended. A request that finds its key bound to the same
fingerprint appends the bound job again, which is a no-op unless the first request died between
the two steps: either way the key's job is on the log when the request answers, and no key ever
names two jobs, whatever the number of partitions is now. The key's record may outlive a job
index, so a keyed job's index lives at least as long as its key.

A batch's events are all `JobRequested`, so their field names are sent once and only each
item's values after them: about half the arguments that flat pairs would take. redis-py packs a
command in Python at most of a microsecond per argument, which makes packing one of the
largest per-item costs of a batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.events import JobRequested, encode
from domain.ids import partition_of
from eventlog import runs, scripts
from eventlog.connection import AsyncClient, Client
from eventlog.entries import flat_args
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from eventlog.replication import ReplicatedWriter, ReplicaWait


@dataclass(frozen=True, slots=True)
class Submission:
    """What accepting a request did: a new job, or the job an Idempotency-Key already named
    (with the fingerprint of the request that named it)."""

    job_id: str
    created: bool
    fingerprint: str | None = None
    # Refused by its tenant's cap on unfinished jobs: nothing was appended.
    refused: bool = False


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One item of a batch to accept: its event, and its Idempotency-Key if it has one.

    The fingerprint is stored with the key only, so it may be "" for an entry without one.
    """

    event: JobRequested
    idempotency_key: str | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the keys written for an accepted job live."""

    job_index_ttl_s: int
    idempotency_ttl_s: int

    def index_ttl_s(self, keyed: bool) -> int:
        if keyed:
            return max(self.job_index_ttl_s, self.idempotency_ttl_s)
        return self.job_index_ttl_s


def _lane_args(names: Names, partition: int, lane: Lane) -> tuple[list[str], str]:
    """The lane's stream and the partition's set of lanes, and the lane's name as the scripts
    take it ("" for the default lane, which is in no set)."""
    keys = [names.lane(partition, lane), names.lanes(partition)]
    return keys, "" if lane.is_default else lane.name


def _counts(names: Names, partition: int, lane: Lane) -> list[str]:
    """The lane's count of unfinished jobs, then that of the tenant's other lane."""
    return [names.queued(partition, lane), names.queued(partition, lane.other)]


def submit_args(
    names: Names, event: JobRequested, index_ttl_s: int, cap: int = 0
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for the SUBMIT script; `cap`: most unfinished jobs the tenant may have in
    the job's partition (0: no cap)."""
    partition, lane = partition_of(event.job_id), Lane.of(event)
    keys, lane_name = _lane_args(names, partition, lane)
    keys += [names.job(event.job_id), *_counts(names, partition, lane), names.deadlines(partition)]
    deadline = runs.deadline_ms(event.deadline)
    member = runs.deadline_member(event.job_id, lane) if deadline else ""
    argv = [event.job_id, str(index_ttl_s), lane_name, str(cap), deadline, member]
    return keys, argv + flat_args(encode(event))


def indexed_at(value: str) -> tuple[str, Lane]:
    """A job index's value: the entry id of the job's JobRequested, and its lane."""
    entry_id, _, lane = value.partition(" ")
    return entry_id, Lane.parse(lane) if lane else DEFAULT_LANE


def reserve_args(
    names: Names, key: str, event: JobRequested, fingerprint: str, ttl_s: int
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for the RESERVE script: `key` of the event's tenant, bound to its job."""
    return [names.idempotency(key, event.tenant)], [event.job_id, fingerprint, str(ttl_s)]


REFUSED = 2


def parse_submission(reply: Sequence[bytes | str | int]) -> Submission:
    """A SUBMIT or RESERVE reply: {created, job id, fingerprint or entry id}, or {2, job id,
    count} for a job the cap refused."""
    created, job_id, third = reply
    text = [x.decode() if isinstance(x, bytes) else x for x in (job_id, third)]
    if int(created) == 1:
        return Submission(job_id=str(text[0]), created=True)
    if int(created) == REFUSED:
        return Submission(job_id=str(text[0]), created=False, refused=True)
    return Submission(job_id=str(text[0]), created=False, fingerprint=str(text[1]))


def batch_submit_args(
    names: Names, partition: int, events: Sequence[JobRequested], index_ttl_s: int, cap: int = 0
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for the BATCH_SUBMIT script: `events`, not empty, all of `partition` and
    of one lane; `cap` as for `submit_args`."""
    if not events:
        raise ValueError("a batch needs at least one entry")
    lane = Lane.of(events[0])
    keys, lane_name = _lane_args(names, partition, lane)
    keys += [*_counts(names, partition, lane), names.deadlines(partition)]
    values: list[str] = []
    field_names: tuple[str, ...] = ()
    for event in events:
        if Lane.of(event) != lane:
            raise ValueError(f"a batch of lane {lane.name} holds a job of {Lane.of(event).name}")
        fields = encode(event)
        if not field_names:
            field_names = tuple(fields)
        elif tuple(fields) != field_names:  # values are sent by position: names must line up
            raise ValueError(f"event fields {tuple(fields)} differ from {field_names}")
        keys.append(names.job(event.job_id))
        values += fields.values()
        values.append(runs.deadline_ms(event.deadline))
    argv = [str(index_ttl_s), lane_name, str(cap), lane.name, str(len(field_names)), *field_names]
    return keys, argv + values


def parse_batch(reply: Sequence[Any]) -> list[Submission]:
    """What the script did with each item, in the batch's order."""
    return [parse_submission(item) for item in reply]


# The job id and Idempotency-Key of the probe: keys a submission would touch, never written.
PROBE_JOB_ID = "00000000-0000-8000-8000-000000000000"
PROBE_KEY = "inferflow-probe"


def probe_calls(names: Names, partitions: int) -> list[list[str]]:
    """The key sets a submission uses together, for the PROBE script: each partition's stream,
    set of lanes and a job index in it, and an Idempotency-Key's record."""
    calls = [[names.idempotency(PROBE_KEY)]]
    for partition in range(partitions):
        job_id = PROBE_JOB_ID[:15] + f"{partition:03x}" + PROBE_JOB_ID[18:]
        calls.append([names.events(partition), names.lanes(partition), names.job(job_id)])
    return calls


@dataclass(slots=True)
class _Plan:
    """A batch on its way: every entry's answer so far, and what is still to append."""

    answers: list[Submission | None]
    # Per partition, in the batch's order: (entry index, event, keyed and bound before).
    appends: dict[int, list[tuple[int, JobRequested, bool]]]


def _plan(entries: Sequence[BatchEntry], bindings: dict[int, Submission]) -> _Plan:
    plan = _Plan(answers=[None] * len(entries), appends={})
    for index, entry in enumerate(entries):
        event, bound_before = entry.event, False
        binding = bindings.get(index)
        if binding is not None and not binding.created:
            if binding.fingerprint != entry.fingerprint:
                plan.answers[index] = binding  # the key names another request's job
                continue
            event, bound_before = dataclasses.replace(event, job_id=binding.job_id), True
        appends = plan.appends.setdefault(partition_of(event.job_id), [])
        appends.append((index, event, bound_before))
    return plan


def _settle(
    plan: _Plan, partition: int, replies: list[Submission], fingerprints: list[str]
) -> None:
    appends = plan.appends[partition]
    if len(replies) != len(appends):
        raise ValueError(f"{len(replies)} replies for {len(appends)} appends")
    for (index, event, bound_before), reply in zip(appends, replies, strict=True):
        if reply.refused:
            plan.answers[index] = reply
        elif bound_before:
            plan.answers[index] = Submission(event.job_id, False, fingerprints[index])
        else:
            # A new job's id: appended now, or by this same call sent again by redis-py after
            # a reply lost on a dropped connection. Either way the job is this entry's.
            plan.answers[index] = Submission(event.job_id, created=True)


class Submitter:
    """Accepts jobs for an asyncio client (the API). With `wait.replicas`, every write that
    accepts a job returns once that many replicas hold it (eventlog.replication)."""

    def __init__(
        self,
        client: AsyncClient,
        names: Names,
        retention: Retention,
        partitions: int,
        wait: ReplicaWait | None = None,
    ) -> None:
        self._redis = client
        self._names = names
        self._retention = retention
        self._partitions = partitions
        # The process's one writer to the masters (their connections kept), which other writes that
        # must wait for replicas share (the API's cancels).
        self.replicated = ReplicatedWriter(client, wait) if wait and wait.replicas else None
        self._one = client.register_script(scripts.SUBMIT)
        self._many = client.register_script(scripts.BATCH_SUBMIT)
        self._reserve = client.register_script(scripts.RESERVE)
        self._probe = client.register_script(scripts.PROBE)

    async def probe(self) -> None:
        """Raise what a submission would raise for where its keys live (a Redis Cluster whose
        slots they straddle, a slot without a master); nothing is written."""
        for keys in probe_calls(self._names, self._partitions):
            await self._probe(keys=keys, args=[])

    async def submit(
        self, event: JobRequested, idempotency_key: str | None, fingerprint: str, cap: int = 0
    ) -> Submission:
        """Accept one job; `cap`: most unfinished jobs its tenant may have in its partition (0:
        none), past which it is refused (`Submission.refused`) and nothing is appended."""
        retention = self._retention
        if idempotency_key:
            keys, argv = reserve_args(
                self._names, idempotency_key, event, fingerprint, retention.idempotency_ttl_s
            )
            binding = parse_submission(
                await self._script(scripts.RESERVE, self._reserve, keys, argv)
            )
            if not binding.created:
                if binding.fingerprint == fingerprint:
                    bound = dataclasses.replace(event, job_id=binding.job_id)
                    appended = await self._append(bound, True, cap)
                    # The first request died before appending, and the cap refuses it now: the
                    # key stays bound, and a later retry appends the same job.
                    return appended if appended.refused else binding
                return binding
        return await self._append(event, bool(idempotency_key), cap)

    async def _append(self, event: JobRequested, keyed: bool, cap: int) -> Submission:
        keys, argv = submit_args(self._names, event, self._retention.index_ttl_s(keyed), cap)
        appended = parse_submission(await self._script(scripts.SUBMIT, self._one, keys, argv))
        if appended.refused:
            return appended
        # The job was on the log already: this very append, sent again by redis-py after a
        # reply lost on a dropped connection. The job is this request's own.
        return Submission(event.job_id, created=True) if not appended.created else appended

    async def _script(self, source: str, script: Any, keys: list[str], argv: list[str]) -> Any:
        if self.replicated is None:
            return await script(keys=keys, args=argv)
        (reply,) = await self.replicated.run([(source, keys, argv)])
        return reply

    async def close(self) -> None:
        if self.replicated is not None:
            await self.replicated.close()

    async def submit_batch(self, entries: Sequence[BatchEntry], cap: int = 0) -> list[Submission]:
        """Accept every entry: the keys bound in one round trip, then one script per partition,
        the partitions concurrently; what happened to each entry, in order. `cap` as for
        `submit`: the entries past it are refused."""
        if not entries:
            return []
        plan = _plan(entries, await self._bind(entries))
        keyed = any(entry.idempotency_key for entry in entries)
        ttl_s = self._retention.index_ttl_s(keyed)
        partitions = list(plan.appends)

        async def append(partition: int) -> list[Submission]:
            events = [event for _, event, _ in plan.appends[partition]]
            keys, argv = batch_submit_args(self._names, partition, events, ttl_s, cap)
            return parse_batch(await self._script(scripts.BATCH_SUBMIT, self._many, keys, argv))

        replies = await asyncio.gather(*(append(p) for p in partitions))
        fingerprints = [entry.fingerprint for entry in entries]
        for partition, reply in zip(partitions, replies, strict=True):
            _settle(plan, partition, reply, fingerprints)
        return [answer for answer in plan.answers if answer is not None]

    async def _bind(self, entries: Sequence[BatchEntry]) -> dict[int, Submission]:
        """RESERVE for every entry with a key, in the batch's order (a key repeated in a batch
        names the job of its first entry); entry index -> binding."""
        keyed = [(i, e) for i, e in enumerate(entries) if e.idempotency_key]
        if not keyed:
            return {}
        ttl_s = self._retention.idempotency_ttl_s
        calls = []
        for _, entry in keyed:
            assert entry.idempotency_key
            keys, argv = reserve_args(
                self._names, entry.idempotency_key, entry.event, entry.fingerprint, ttl_s
            )
            calls.append((scripts.RESERVE, keys, argv))
        if self.replicated is not None:
            replies = await self.replicated.run(calls)
        else:
            pipe = self._redis.pipeline(transaction=False)
            for source, keys, argv in calls:
                # EVAL, not the registered script: a script on a pipeline costs a round trip
                # more.
                pipe.eval(source, len(keys), *keys, *argv)
            replies = await pipe.execute()
        return {i: parse_submission(reply) for (i, _), reply in zip(keyed, replies, strict=True)}


def submit(
    client: Client,
    names: Names,
    event: JobRequested,
    retention: Retention,
) -> Submission:
    """Append one job without a key from a blocking client (operator commands, tests)."""
    keys, argv = submit_args(names, event, retention.index_ttl_s(False))
    return parse_submission(client.register_script(scripts.SUBMIT)(keys=keys, args=argv))
