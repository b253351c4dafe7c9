"""Webhook messages in Redis: what the notifier keeps of jobs with a webhook, the messages it
has to send, their leases, outcomes and dead letters (scripts in eventlog/lua/webhook_*.lua).

Everything of a job lives in its partition's slot: the job's webhook hash, its messages, the
partition's due set, its lane stream and the partition's webhook dead letters. So each step is
one script, atomic on a Redis Cluster too, and messages are in Redis, not in a notifier's
memory: a restart of a notifier, or of Redis (with its persistence), loses none.

1. `track`: every entry the notifier reads is kept for a job with a webhook (its request made
   it known); for an entry that triggers a message, the job's kept entries come back.
2. `schedule`: the message (its body rendered by the notifier) is due now; once only.
3. `lease`: due messages are leased to one notifier until its attempt's outcome.
4. `outcome`: the attempt's events go to the job's lane, and the message is due again, or done.
5. Abandoned messages are dead letters, with their bodies; `redrive` sends one again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from domain.events import Event, encode
from eventlog import scripts
from eventlog.connection import AsyncClient, Client
from eventlog.entries import Entry, flat_args, range_entries
from eventlog.lanes import Lane
from eventlog.names import Names
from eventlog.writes import Queue, ScriptCall, SlotWriter

PENDING = "pending"
DELIVERED = "delivered"
ABANDONED = "abandoned"
RETRY = "retry"

REQUEST, EVENT, TRIGGER = "request", "event", "trigger"


@dataclass(frozen=True, slots=True)
class Tracked:
    """What the notifier kept of a job with a webhook: its webhook and its entries so far."""

    url: str
    filter: str
    tenant: str
    lane: str
    entries: list[Entry]

    @classmethod
    def of(cls, flat: Sequence[str]) -> Tracked:
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        entries = [
            (name[2:], json.loads(value)) for name, value in fields.items() if name[:2] == "e:"
        ]
        return cls(fields["url"], fields["filter"], fields["tenant"], fields["lane"], entries)


@dataclass(frozen=True, slots=True)
class Message:
    """One webhook message: a job's (or a batch's) trigger, to one URL, with the body every
    attempt sends, signed with `tenant`'s secrets. Its keys are `partition`'s, and its
    attempts are events of the stream of the lane named `lane` there: the job's own lane; for
    a batch, the default lane of partition 0 (with the batch's id as their job id)."""

    webhook_id: str
    job_id: str
    trigger: str
    url: str
    tenant: str
    partition: int
    lane: str
    body: str
    # When the triggering event happened (Unix ms): how late a delivery is, is measured from it.
    event_ms: int
    attempts: int = 0
    state: str = PENDING

    def fields(self) -> dict[str, str]:
        return {
            "webhook_id": self.webhook_id,
            "job_id": self.job_id,
            "trigger": self.trigger,
            "url": self.url,
            "tenant": self.tenant,
            "partition": str(self.partition),
            "lane": self.lane,
            "body": self.body,
            "event_ms": str(self.event_ms),
            "attempts": str(self.attempts),
            "state": self.state,
        }

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> Message:
        return cls(
            webhook_id=fields["webhook_id"],
            job_id=fields["job_id"],
            trigger=fields["trigger"],
            url=fields["url"],
            tenant=fields["tenant"],
            partition=int(fields["partition"]),
            lane=fields["lane"],
            body=fields["body"],
            event_ms=int(fields.get("event_ms", "0")),
            attempts=int(fields.get("attempts", "0")),
            state=fields.get("state", PENDING),
        )


@dataclass(frozen=True, slots=True)
class Leased:
    """Messages leased to this notifier until `lease_ms` (the fencing token of their outcome)."""

    lease_ms: int
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: RETRY (due again at `next_due_ms`), DELIVERED or ABANDONED, with
    the events that record it (WebhookAttempted, then WebhookDelivered or WebhookAbandoned)."""

    kind: str
    attempts: int
    events: tuple[Event, ...]
    next_due_ms: int = 0
    letter: Mapping[str, str] | None = None


def dead_letter_fields(message: Message, reason: str, at: datetime) -> dict[str, str]:
    """An abandoned message as its dead letter: the message (its body too) and why, when."""
    return {
        **message.fields(),
        "reason": reason,
        "dead_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


def schedule_call(
    names: Names, message: Message, due_ms: int, last: bool, ttl_s: int
) -> ScriptCall:
    """The WEBHOOK_SCHEDULE call that makes `message` due at `due_ms` (`last`: its job's last
    message, after which what was kept of the job goes)."""
    webhook_job = (
        names.webhook_job(message.job_id)
        if last
        else names.webhook(message.partition, message.webhook_id)
    )
    keys = [
        names.webhook(message.partition, message.webhook_id),
        names.webhooks_due(message.partition),
        webhook_job,
    ]
    argv = [message.webhook_id, str(due_ms), "1" if last else "0", str(ttl_s)]
    return scripts.WEBHOOK_SCHEDULE, keys, argv + flat_args(message.fields())


class WebhookLog:
    """The scripts on a blocking client, in one partition's slot (the notifier's reader of the
    partition, the dead-letter commands)."""

    def __init__(self, client: Client, names: Names, partition: int, ttl_s: int) -> None:
        self._redis = client
        self._names = names
        self.partition = partition
        # How long a job's webhook hash and a done message are kept (JOB_INDEX_TTL_S, or the
        # schedule's length when that is longer).
        self.ttl_s = ttl_s
        self._writes = SlotWriter(client, names.webhooks_due(partition))

    def track(
        self, calls: Sequence[tuple[str, Entry, Lane, tuple[str, str] | None]]
    ) -> list[Tracked | None]:
        """For each (kind, entry, lane, webhook (URL, filter) of a request): keep the entry when
        its job has a webhook; for a TRIGGER, what was kept of the job (None: it has none). One
        round trip."""
        found: list[ScriptCall] = []
        for kind, (entry_id, fields), lane, webhook in calls:
            job_id = fields["job_id"]
            argv = [kind, entry_id, json.dumps(fields, separators=(",", ":")), str(self.ttl_s)]
            if webhook is not None:
                argv += [*webhook, lane.tenant, lane.kind]
            keys = [
                self._names.webhook_job(job_id),
                self._names.lane(self.partition, lane),
                self._names.job(job_id),
            ]
            found.append((scripts.WEBHOOK_TRACK, keys, argv))
        replies = self._writes.scripts(found) if found else []
        return [
            Tracked.of(reply) if kind == TRIGGER and isinstance(reply, list) else None
            for (kind, *_), reply in zip(calls, replies, strict=True)
        ]

    def schedule(
        self, messages: Sequence[tuple[Message, bool]], due_ms: int, before: Queue | None = None
    ) -> list[bool]:
        """Make each (message, whether it is its job's last) due at `due_ms` unless it exists,
        after the commands `before` queues (acknowledgements); whether each was new. One round
        trip."""
        calls: list[ScriptCall] = []
        for message, last in messages:
            calls.append(schedule_call(self._names, message, due_ms, last, self.ttl_s))
        if not calls:
            if before is not None:
                self._writes.pipelined(before)
            return []
        return [bool(reply) for reply in self._writes.scripts(calls, before)]

    def letters(self) -> list[tuple[str, dict[str, str]]]:
        """The partition's dead letters, as `PARTITION/ENTRY_ID` and their fields."""
        stream = self._names.webhook_dead_letters(self.partition)
        return [
            (f"{self.partition}/{entry_id}", fields)
            for entry_id, fields in range_entries(self._redis.xrange(stream))
        ]

    def redrive(self, entry_id: str, now_ms: int) -> bool:
        """Send the partition's letter `entry_id` again, due now; False when there is no such
        letter."""
        stream = self._names.webhook_dead_letters(self.partition)
        found = range_entries(self._redis.xrange(stream, entry_id, entry_id))
        if not found:
            return False
        message = Message.of(found[0][1])
        fresh = dataclasses.replace(message, attempts=0, state=PENDING)
        keys = [
            stream,
            self._names.webhook(self.partition, message.webhook_id),
            self._names.webhooks_due(self.partition),
        ]
        argv = [entry_id, message.webhook_id, str(now_ms), str(self.ttl_s)]
        call = (scripts.WEBHOOK_REDRIVE, keys, argv + flat_args(fresh.fields()))
        return bool(self._writes.scripts([call])[0])


class AsyncWebhookLog:
    """The scripts on an asyncio client (the notifier's deliveries)."""

    def __init__(self, client: AsyncClient, names: Names, ttl_s: int) -> None:
        self._redis = client
        self._names = names
        self.ttl_s = ttl_s
        self._lease = client.register_script(scripts.WEBHOOK_LEASE)
        self._outcome = client.register_script(scripts.WEBHOOK_OUTCOME)
        self._schedule = client.register_script(scripts.WEBHOOK_SCHEDULE)

    async def _leased_ids(
        self, key: str, now_ms: int, lease_ms: int, count: int
    ) -> tuple[int, list[str]]:
        reply = await self._lease(keys=[key], args=[str(now_ms), str(lease_ms), str(count)])
        return int(reply[0]), list(reply[1:])

    async def lease(self, partition: int, now_ms: int, lease_ms: int, count: int) -> Leased:
        """Up to `count` of the partition's due messages, leased for `lease_ms`."""
        key = self._names.webhooks_due(partition)
        lease_end, ids = await self._leased_ids(key, now_ms, lease_ms, count)
        if not ids:
            return Leased(lease_end, [])
        pipe = self._redis.pipeline(transaction=False)
        for webhook_id in ids:
            pipe.hgetall(self._names.webhook(partition, webhook_id))
        found = await pipe.execute()
        messages, gone = [], []
        for webhook_id, fields in zip(ids, found, strict=True):
            if fields:
                messages.append(Message.of(fields))
            else:  # its hash expired: nothing to send
                gone.append(webhook_id)
        if gone:
            await self._redis.zrem(self._names.webhooks_due(partition), *gone)
        return Leased(lease_end, messages)

    async def watched(self, now_ms: int, again_ms: int, count: int) -> list[str]:
        """Up to `count` batches whose webhook waits for them and whose turn it is, each
        looked at again `again_ms` later unless it is `unwatch`ed meanwhile."""
        key = self._names.webhook_batches
        _lease_end, ids = await self._leased_ids(key, now_ms, again_ms, count)
        return ids

    async def unwatch(self, batch_id: str) -> None:
        await self._redis.zrem(self._names.webhook_batches, batch_id)

    async def schedule(self, message: Message, due_ms: int) -> bool:
        """Make `message` due at `due_ms` unless it exists; whether it is new."""
        _source, keys, argv = schedule_call(self._names, message, due_ms, False, self.ttl_s)
        return bool(await self._schedule(keys=keys, args=argv))

    async def outcome(self, message: Message, lease_ms: int, outcome: Outcome) -> bool:
        """Write an attempt's outcome while the lease is held; False when it was lost."""
        lane = Lane.parse(message.lane)
        keys = [
            self._names.webhook(message.partition, message.webhook_id),
            self._names.webhooks_due(message.partition),
            self._names.lane(message.partition, lane),
            self._names.webhook_dead_letters(message.partition),
        ]
        argv = [
            message.webhook_id,
            str(lease_ms),
            outcome.kind,
            str(outcome.next_due_ms),
            str(outcome.attempts),
            str(self.ttl_s),
        ]
        events = [flat_args(encode(event)) for event in outcome.events[:2]]
        events += [[] for _ in range(2 - len(events))]
        for fields in events:
            argv += [str(len(fields)), *fields]
        if outcome.letter is not None:
            argv += flat_args(outcome.letter)
        return bool(await self._outcome(keys=keys, args=argv))
