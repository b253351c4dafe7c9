"""One consumer of a consumer group on the log: reading, claiming, acknowledging, finishing.

This is the machinery every role that works through entries shares (the inference workers, and
any later group): what it does with an entry is the caller's. An entry is acknowledged by the
FINISH script that appends its outcome, only while this consumer still owns it, so a consumer
that dies mid-entry leaves it pending, and another claims it once it has been idle for
`claim_idle_ms`. A heartbeat (`held`) keeps the entries this consumer works on from looking
idle; on stop, what it has not started is handed back at once. The groups of a partition's lanes
also track each job's run (eventlog.runs): START begins a job and FINISH ends it only while no
cancel, batch cancel or deadline has ended it first.

`ConsumerGroup` is the group on one stream. `PartitionGroup` is the group on every lane of a
partition (eventlog.lanes): a `ConsumerGroup` per lane, all of them read by one XREADGROUP
(the lanes share the partition's slot, so this holds on a Redis Cluster too), claimed in one
round, and held by one heartbeat. Its reads are fair: interactive lanes first, then every lane
with an equal share of the read, so one tenant's backlog never holds up another tenant's jobs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis

from domain.events import Event, JobRequested, encode
from eventlog import runs, scripts
from eventlog.connection import Client
from eventlog.entries import Entry, entries_by_stream, flat_args, stream_fields
from eventlog.heartbeat import HeldEntries
from eventlog.lanes import Lane, known_lanes, served_first
from eventlog.names import Names
from eventlog.positions import START
from eventlog.runs import Decision, LaneRuns
from eventlog.writes import ScriptCall, SlotWriter


@dataclass(frozen=True, slots=True)
class GroupOptions:
    claim_idle_ms: int = 5000
    claim_interval_ms: int = 1000
    # A claimed entry delivered more often than this is handed to the caller as over the limit.
    max_deliveries: int = 5
    # Replicas that must hold each write (the events appended, the outcomes) before it counts
    # as done (eventlog.replication); 0: none waited for.
    replicas: int = 0
    replicas_timeout_ms: int = 1000


@dataclass(frozen=True, slots=True)
class Claimed:
    """Stale entries taken over from silent consumers: those to work on, and those delivered
    more than `max_deliveries` times, with their delivery counts."""

    entries: list[Entry] = field(default_factory=list)
    over_limit: list[tuple[Entry, int]] = field(default_factory=list)


class ConsumerGroup:
    """One consumer of a group on one stream. Several of them on streams of one slot may share
    a heartbeat (`held`) and be read together (`read_streams`, `PartitionGroup`)."""

    def __init__(
        self,
        client: Client,
        stream: str,
        group: str,
        consumer: str,
        dead_letters: str,
        options: GroupOptions = GroupOptions(),
        held: HeldEntries | None = None,
        unfinished: str | None = None,
        runs: LaneRuns | None = None,
    ) -> None:
        self._redis = client
        self.stream = stream
        # A count of the stream's unfinished jobs that FINISH takes one from (Names.queued).
        self.unfinished = unfinished
        # The runs of the stream's jobs (eventlog.runs): with them, jobs are begun by START, and
        # FINISH writes nothing for a job that ended meanwhile (a cancel). Without, FINISH
        # decides by ownership alone.
        self.runs = runs
        self.group = group
        self.consumer = consumer
        self.dead_letters = dead_letters
        self._options = options
        self._writes = SlotWriter(client, stream, options.replicas, options.replicas_timeout_ms)
        self._next_claim_at = 0.0
        self._claim_cursor = START
        # Entries read with nothing to do, acknowledged with the next read (one round trip).
        self._deferred_acks: list[str] = []
        if held is None:
            held = HeldEntries(client, group, consumer, options.claim_idle_ms)
        self.held = held

    def ensure(self) -> None:
        """Create the group at the start of the log, so that no earlier entry is skipped."""
        create_groups(self._redis, self.group, [self.stream])

    # ---------------------------------------------------------------- reading

    def read(self, count: int, block_ms: int | None) -> list[Entry]:
        """One XREADGROUP (None: no BLOCK), after the XACK of the deferred acknowledgements in
        the same round trip."""
        return read_streams([self], count, block_ms)[0].get(self.stream, [])

    def claim_stale(self, count: int) -> Claimed:
        """Every `claim_interval_ms`: take over up to `count` entries that have been idle for
        `claim_idle_ms` (their consumer died, or lost its connection)."""
        if time.monotonic() < self._next_claim_at:
            return Claimed()
        self._next_claim_at = time.monotonic() + self._options.claim_interval_ms / 1000
        return claim_streams([self], count)[0]

    def hold(self, entry_ids: Iterable[str]) -> None:
        """Keep these entries fresh with the heartbeat while they are worked on."""
        self.held.hold(self.stream, entry_ids)

    def release(self, *entry_ids: str) -> None:
        self.held.release(self.stream, *entry_ids)

    # ---------------------------------------------------------------- writing

    def ack(self, *entry_ids: str) -> None:
        self._redis.xack(self.stream, self.group, *entry_ids)

    def defer_ack(self, *entry_ids: str) -> None:
        """Acknowledge with the next read instead of a round trip of its own."""
        self._deferred_acks += entry_ids

    def flush_acks(self) -> None:
        acks, self._deferred_acks = self._deferred_acks, []
        if acks:
            self.ack(*acks)

    def append(self, event: Event) -> None:
        if not self._options.replicas:
            self._redis.xadd(self.stream, stream_fields(event))
            return
        self.append_and_ack([event], [])

    def append_and_ack(self, events: Sequence[Event], ack_ids: Sequence[str]) -> None:
        """Append `events` and acknowledge entries that need no outcome: one round trip."""

        def queue(pipe: Any) -> None:
            if ack_ids:
                pipe.xack(self.stream, self.group, *ack_ids)
            for event in events:
                pipe.xadd(self.stream, stream_fields(event))

        self._writes.pipelined(queue)

    def start(
        self,
        requests: Sequence[tuple[str, JobRequested]],
        at: datetime,
        ack_ids: Sequence[str] = (),
    ) -> list[Decision]:
        """Begin the jobs of these (entry id, request) and acknowledge entries that need no
        outcome, in one round trip: each job's JobStarted, unless its run ended (ENDED) or it
        is cancelled now instead (CANCELLED: its batch was, or its deadline passed). Needs
        `runs`."""
        if self.runs is None:
            raise ValueError(f"the group on {self.stream} does not track runs")
        before = (lambda pipe: pipe.xack(self.stream, self.group, *ack_ids)) if ack_ids else None
        if not requests:
            if before is not None:
                self._writes.pipelined(before)
            return []
        keys, argv = self.runs.start(requests, self.consumer, at)
        (reply,) = self._writes.scripts([(scripts.START, keys, argv)], before)
        return [runs.parse(item) for item in reply]

    def note(self, event: Event) -> bool:
        """Append a running job's non-terminal event (JobRetrying); False, with nothing
        written, when its run has ended (it was cancelled)."""
        if self.runs is None:
            self.append(event)
            return True
        keys, argv = self.runs.note(event.job_id, encode(event))
        (reply,) = self._writes.scripts([(scripts.NOTE, keys, argv)])
        return reply is not None

    def finish(
        self,
        entry_id: str,
        outcome: Event,
        dead_letter: Mapping[str, str] | None = None,
        request: JobRequested | None = None,
    ) -> Decision:
        """Append the outcome (and the dead letter, if any) and acknowledge the entry, in one
        step: WRITTEN; SUPERSEDED when the entry is no longer this consumer's; with `runs`,
        ENDED when the job ended meanwhile, CANCELLED (a JobCancelled written instead) when
        `request`'s batch was cancelled or its deadline passed."""
        call = self._finish_call(entry_id, outcome, request, dead_letter)
        return runs.parse(self._writes.scripts([call])[0])

    def finish_all(
        self,
        outcomes: Sequence[tuple[str, Event]],
        requests: Mapping[str, JobRequested] | None = None,
    ) -> list[Decision]:
        """`finish` for every (entry id, outcome), in one round trip, each with its job's
        request from `requests` (by job id) when known. Each FINISH still runs as its own
        atomic script."""
        found = requests or {}
        calls = [self._finish_call(e, o, found.get(o.job_id)) for e, o in outcomes]
        return [runs.parse(reply) for reply in self._writes.scripts(calls)]

    def _finish_call(
        self,
        entry_id: str,
        outcome: Event,
        request: JobRequested | None,
        dead_letter: Mapping[str, str] | None = None,
    ) -> ScriptCall:
        fields = flat_args(encode(outcome))
        cancelled: list[str] = []
        if self.runs is None:  # the stream in the run's places: FINISH then tracks no run
            run_keys, run_argv = [self.stream] * 3, ["0", "", ""]
        else:
            run_keys, run_argv, cancelled = self.runs.finish(
                outcome.job_id, request, self.consumer, outcome.occurred_at
            )
        keys = [self.stream, *run_keys]
        counted = "0"
        if self.unfinished:
            keys.append(self.unfinished)
            counted = "1"
        argv = [self.group, self.consumer, entry_id, counted, *run_argv, str(len(fields)), *fields]
        argv += [str(len(cancelled)), *cancelled]
        if dead_letter is not None:
            keys.append(self.dead_letters)
            argv += flat_args(dead_letter)
        return scripts.FINISH, keys, argv


# -------------------------------------------------------------------- several streams, one slot


def create_groups(client: Client, group: str, streams: Sequence[str]) -> None:
    """Create `group` on each stream (and the stream, if need be) at its start, so that no
    earlier entry is skipped; one round trip. A group that exists already is left alone."""
    if not streams:
        return
    pipe = client.pipeline(transaction=False)
    for stream in streams:
        pipe.xgroup_create(stream, group, "0", mkstream=True)
    for reply in pipe.execute(raise_on_error=False):
        if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
            raise reply


def read_streams(
    members: Sequence[ConsumerGroup],
    count: int,
    block_ms: int | None,
    carrying: Iterable[ConsumerGroup] = (),
    also: Sequence[Sequence[Any]] = (),
) -> tuple[dict[str, list[Entry]], list[Any]]:
    """One XREADGROUP over the members' streams, which share a group, a consumer and a slot:
    up to `count` new entries of each stream, by stream (None: no BLOCK). The deferred
    acknowledgements of the members and of `carrying`, and the commands `also` (keys of the
    same slot), go first in the same round trip; the second value is the replies of `also`."""
    first = members[0]
    streams: dict[Any, Any] = {member.stream: ">" for member in members}
    owed = [(m, m._deferred_acks) for m in dict.fromkeys([*members, *carrying]) if m._deferred_acks]
    if not (owed or also):
        reply = first._redis.xreadgroup(
            first.group, first.consumer, streams, count=count, block=block_ms
        )
        return entries_by_stream(reply), []
    pipe = first._redis.pipeline(transaction=False)
    for command in also:
        pipe.execute_command(*command)
    for member, acks in owed:
        member._deferred_acks = []
        pipe.xack(member.stream, member.group, *acks)
    pipe.xreadgroup(first.group, first.consumer, streams, count=count, block=block_ms)
    try:
        *replies, reply = pipe.execute()
    except redis.RedisError:
        for member, acks in owed:
            member._deferred_acks = acks + member._deferred_acks
        raise
    return entries_by_stream(reply), replies[: len(also)]


def claim_streams(members: Sequence[ConsumerGroup], count: int) -> list[Claimed]:
    """XAUTOCLAIM on each member's stream from where its last claim stopped (a cursor each),
    up to `count` entries each: what each took over, in the members' order. Two round trips
    in all (the claims, then the delivery counts of what they took)."""
    first = members[0]
    pipe = first._redis.pipeline(transaction=False)
    for m in members:
        pipe.xautoclaim(
            m.stream,
            m.group,
            m.consumer,
            min_idle_time=m._options.claim_idle_ms,
            start_id=m._claim_cursor,
            count=count,
        )
    taken: list[list[Entry]] = []
    for member, (cursor, claimed, *_deleted) in zip(members, pipe.execute(), strict=True):
        member._claim_cursor = cursor
        taken.append([(entry_id, fields) for entry_id, fields in claimed if fields is not None])
    if not any(taken):
        return [Claimed() for _ in members]
    asked = [
        (m, entry_id) for m, entries in zip(members, taken, strict=True) for entry_id, _ in entries
    ]
    pipe = first._redis.pipeline(transaction=False)
    for member, entry_id in asked:
        pipe.xpending_range(member.stream, member.group, entry_id, entry_id, 1, member.consumer)
    deliveries = {
        (member.stream, entry_id): int(reply[0]["times_delivered"])
        for (member, entry_id), reply in zip(asked, pipe.execute(), strict=True)
        if reply
    }
    found = []
    for member, entries in zip(members, taken, strict=True):
        limit = member._options.max_deliveries
        times = [deliveries.get((member.stream, entry_id), 0) for entry_id, _ in entries]
        found.append(
            Claimed(
                entries=[e for e, n in zip(entries, times, strict=True) if n <= limit],
                over_limit=[(e, n) for e, n in zip(entries, times, strict=True) if n > limit],
            )
        )
    return found


class PartitionGroup:
    """One consumer of a group on every lane of a partition: a `ConsumerGroup` per lane (write a
    lane's outcomes through `lane(...)`), one heartbeat for them all (`held`).

    Lanes are found in the partition's set of lanes (eventlog.lanes) at the first `refresh`,
    again every `refresh_ms`, whenever a round finds nothing to read, and at the round after
    one whose first read saw the set grow (its size rides along, at no round trip of its own);
    a lane found late gets its group at its start, so none of its entries is missed.

    A round of reading (`read_round`) serves the interactive lanes first: while they have
    entries, a round reads only them. Else one XREADGROUP over every lane, blocking, reads at
    most an equal share of the round from each, so each tenant's bulk backlog gets the same
    part of the consumer's time whatever its length (round-robin by tenant).
    """

    def __init__(
        self,
        client: Client,
        names: Names,
        partition: int,
        group: str,
        consumer: str,
        options: GroupOptions = GroupOptions(),
        refresh_ms: int = 1000,
        run_ttl_s: int = 7 * 86400,
    ) -> None:
        self._redis = client
        self._names = names
        # How long a job's run key lives (eventlog.runs): JOB_INDEX_TTL_S.
        self._run_ttl_s = run_ttl_s
        self.partition = partition
        self.group = group
        self.consumer = consumer
        self._options = options
        self._refresh_s = refresh_ms / 1000
        self._next_refresh_at = 0.0
        self._next_claim_at = 0.0
        self.held = HeldEntries(client, group, consumer, options.claim_idle_ms)
        self._lanes: dict[Lane, ConsumerGroup] = {}  # in the order they are served
        self._by_stream: dict[str, Lane] = {}
        self._registered = 0  # the size of the partition's set of lanes at the last look
        self._interactive_served = False  # the last round was of interactive lanes only

    @property
    def lanes(self) -> list[Lane]:
        """The lanes known so far, in the order they are served (interactive ones first)."""
        return list(self._lanes)

    def lane(self, lane: Lane) -> ConsumerGroup:
        """The group on `lane`'s stream, through which its entries are acknowledged and its
        jobs' events written."""
        return self._lanes[lane]

    def refresh(self, force: bool = False) -> list[Lane]:
        """Look for new lanes (every `refresh_ms`, or now with `force`), join their groups and
        return them."""
        now = time.monotonic()
        if not force and now < self._next_refresh_at:
            return []
        self._next_refresh_at = now + self._refresh_s
        # Counted before they are listed: a lane added in between makes the next round look
        # again rather than never.
        self._registered = int(self._redis.scard(self._names.lanes(self.partition)))
        found = [
            lane
            for lane in known_lanes(self._redis, self._names, self.partition)
            if lane not in self._lanes
        ]
        if not found:
            return []
        streams = [self._names.lane(self.partition, lane) for lane in found]
        create_groups(self._redis, self.group, streams)
        for lane, stream in zip(found, streams, strict=True):
            self._lanes[lane] = ConsumerGroup(
                self._redis,
                stream,
                self.group,
                self.consumer,
                self._names.dead_letters(self.partition),
                self._options,
                self.held,
                unfinished=self._names.queued(self.partition, lane),
                runs=LaneRuns(self._names, self.partition, lane, self.group, self._run_ttl_s),
            )
            self._by_stream[stream] = lane
        self._lanes = {lane: self._lanes[lane] for lane in served_first(list(self._lanes))}
        return found

    def read_round(
        self,
        room: int,
        block_ms: int,
        fill_ms: int = 0,
        stop: threading.Event | None = None,
    ) -> dict[Lane, list[Entry]]:
        """New entries for one round of work, by lane (at most `room` of any one lane):

        1. when there are bulk lanes, the interactive lanes without blocking, up to `room`
           each; if they had any, that is the round (but not twice in a row: after such a
           round, the next starts at step 2, so a steady stream of interactive work cannot
           starve the bulk lanes);
        2. else every lane, blocking up to `block_ms` for the first entry, up to
           `room // bulk lanes` (at least 1) of each: a blocking read answers at once when
           any lane has entries, and the share keeps the bulk lanes even;
        3. with `fill_ms`, reading on that long while the round (`room` entries in all) has
           room left (bigger batches): the same lanes, with interactive ones added, and an
           interactive entry ends the wait.

        A round that finds nothing looks for new lanes at once."""
        self.refresh()
        if room <= 0:
            return {}
        members = list(self._lanes.values())
        interactive = self._interactive()
        bulk = len(members) - len(interactive)
        got: dict[str, list[Entry]] = {}
        interactive_turn = bool(bulk) and not self._interactive_served
        if interactive_turn:
            got = self._read(interactive, room, None, look=True)
        self._interactive_served = bool(got)
        if got:
            count, reading = room, interactive
        else:
            count, reading = max(1, room // bulk) if bulk else room, members
            got = self._read(members, count, block_ms, look=not bulk)
        if not got:
            self.refresh(force=True)
            return {}
        if fill_ms:
            self._fill(got, reading, count, room, fill_ms, stop)
        return {self._by_stream[stream]: entries for stream, entries in got.items()}

    def _read(
        self,
        members: Sequence[ConsumerGroup],
        count: int,
        block_ms: int | None,
        look: bool = False,
    ) -> dict[str, list[Entry]]:
        """`read_streams`, carrying every lane's deferred acknowledgements; with `look`, it
        counts the partition's lanes in the same round trip, and a new one is looked for at
        the next round: a lane that appears while the others keep every round busy waits one
        round, not `refresh_ms`. A lane whose stream or group has gone (deleted by hand) would
        fail every read of the partition: its group is made again, at the start of what is
        there now, for the next read."""
        also = [("SCARD", self._names.lanes(self.partition))] if look else []
        try:
            got, replies = read_streams(
                members, count, block_ms, carrying=self._lanes.values(), also=also
            )
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):
                create_groups(self._redis, self.group, list(self._by_stream))
            raise
        if look and int(replies[0]) != self._registered:
            self._next_refresh_at = 0.0
        return got

    def _fill(
        self,
        got: dict[str, list[Entry]],
        reading: Sequence[ConsumerGroup],
        count: int,
        room: int,
        fill_ms: int,
        stop: threading.Event | None,
    ) -> None:
        deadline = time.monotonic() + fill_ms / 1000
        bulk = any(not self._by_stream[m.stream].interactive for m in reading)
        if bulk:  # interactive lanes are read too, and end the wait
            reading = list(dict.fromkeys([*reading, *self._interactive()]))
        while not (stop and stop.is_set()):
            if bulk and any(self._by_stream[stream].interactive for stream in got):
                return
            left = room - sum(len(entries) for entries in got.values())
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or left_ms < 1:  # BLOCK 0 would wait forever
                return
            # COUNT is per stream: the room left, shared out among the lanes read.
            more = self._read(reading, max(1, min(count, left // len(reading))), left_ms)
            for stream, entries in more.items():
                got.setdefault(stream, []).extend(entries)

    def _interactive(self) -> list[ConsumerGroup]:
        return [m for lane, m in self._lanes.items() if lane.interactive]

    def claim_stale(self, count: int) -> dict[Lane, Claimed]:
        """Every `claim_interval_ms`: take over, in every lane, up to `count` entries that have
        been idle for `claim_idle_ms`; the lanes that gave any."""
        if time.monotonic() < self._next_claim_at or not self._lanes:
            return {}
        self._next_claim_at = time.monotonic() + self._options.claim_interval_ms / 1000
        claimed = claim_streams(list(self._lanes.values()), count)
        return {
            lane: found
            for lane, found in zip(self._lanes, claimed, strict=True)
            if found.entries or found.over_limit
        }

    def flush_acks(self) -> None:
        """Acknowledge, in every lane, what waits to ride with a read."""
        owed = [m for m in self._lanes.values() if m._deferred_acks]
        if not owed:
            return
        pipe = self._redis.pipeline(transaction=False)
        for member in owed:
            acks, member._deferred_acks = member._deferred_acks, []
            pipe.xack(member.stream, member.group, *acks)
        pipe.execute()
