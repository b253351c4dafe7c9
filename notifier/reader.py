"""The notifier's reading of one partition's log: every lane, through the notifier group.

Reading, claiming and the heartbeat are the consumer group's (eventlog.group.PartitionGroup),
as for the inference workers; what this module does with an entry is the notifier's own:

- a JobRequested with a webhook makes its job known (eventlog.webhooks.track keeps it);
- every later event of a known job is kept with it, so that its body can be folded;
- a JobStarted (when the filter names `started`) and a terminal event (`completed`) schedule a
  message whose body is the job at that point;
- everything else (jobs without a webhook, the delivery events themselves) is only
  acknowledged.

Entries are acknowledged with the round trip that schedules their messages: an entry whose
message is not scheduled stays pending, is claimed again once idle, and schedules it then.
Scheduling is once per message, so an entry read twice sends nothing twice. An entry claimed
more than MAX_DELIVERIES times (it breaks the notifier) is acknowledged and logged: the job is
not the notifier's to fail.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis

from domain.errors import InferFlowError
from domain.events import JobRequested, JobStarted, decode, is_terminal
from domain.ids import partition_of
from domain.webhooks import COMPLETED, STARTED, message_id, parse_filter
from eventlog.connection import Client
from eventlog.entries import Entry
from eventlog.group import ConsumerGroup, GroupOptions, PartitionGroup
from eventlog.lanes import Lane
from eventlog.positions import position
from eventlog.webhooks import EVENT, REQUEST, TRIGGER, Message, Tracked, WebhookLog
from notifier import body
from notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

Call = tuple[str, Entry, Lane, tuple[str, str] | None]


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _call(entry: Entry, lane: Lane) -> Call | None:
    """What to do with an entry: keep it (a request with a webhook, or any job event), look for
    a message (a trigger), or nothing (None)."""
    _entry_id, fields = entry
    kind = fields.get("type", "")
    if not fields.get("job_id") or kind.startswith("Webhook"):
        return None
    if kind == JobRequested.__name__:
        webhook = fields.get("webhook", "")
        if not webhook:
            return None
        return REQUEST, entry, lane, (webhook, fields.get("webhook_events_filter") or COMPLETED)
    try:
        event = decode(fields)
    except InferFlowError:
        return None
    if isinstance(event, JobStarted) or is_terminal(event):
        return TRIGGER, entry, lane, None
    return EVENT, entry, lane, None


def _trigger(fields: dict[str, str]) -> str:
    return STARTED if fields.get("type") == JobStarted.__name__ else COMPLETED


def message_of(entry: Entry, tracked: Tracked) -> Message | None:
    """The message an entry triggers for a job with a webhook; None when the filter leaves it
    out, or the job cannot be folded."""
    _entry_id, fields = entry
    trigger = _trigger(fields)
    try:
        wanted = parse_filter(tracked.filter)
    except ValueError:
        wanted = frozenset((COMPLETED,))
    if trigger not in wanted:
        return None
    job_id = fields["job_id"]
    # The body is the job as it was at the trigger: the entries up to it.
    state = body.state_of(job_id, [e for e in tracked.entries if _not_after(e[0], entry[0])])
    if state is None:
        return None
    return Message(
        webhook_id=message_id(job_id, trigger),
        job_id=job_id,
        trigger=trigger,
        url=tracked.url,
        tenant=tracked.tenant,
        partition=partition_of(job_id),
        lane=Lane(tracked.lane, tracked.tenant).name,
        body=body.render(state),
        event_ms=int(decode(fields).occurred_at.timestamp() * 1000),
    )


def _not_after(entry_id: str, limit: str) -> bool:
    return position(entry_id) <= position(limit)


class PartitionReader:
    def __init__(self, settings: NotifierSettings, client: Client, partition: int) -> None:
        self._settings = settings
        self.partition = partition
        names = settings.names
        options = GroupOptions(
            claim_idle_ms=settings.claim_idle_ms,
            claim_interval_ms=settings.claim_interval_ms,
            max_deliveries=settings.max_deliveries,
        )
        self.group = PartitionGroup(
            client,
            names,
            partition,
            names.notifier_group,
            settings.notifier_name,
            options,
            settings.lanes_refresh_ms,
            run_ttl_s=settings.job_index_ttl_s,
        )
        self.webhooks = WebhookLog(client, names, partition, settings.kept_s)
        self._names = names

    def run(self, stop: threading.Event) -> None:
        self.group.refresh(force=True)
        self.group.held.start()
        backoff_s = 0.1
        try:
            while not stop.is_set():
                try:
                    self.poll_once(stop)
                    backoff_s = 0.1
                except redis.RedisError as exc:
                    log.warning(
                        "redis unavailable; retrying",
                        extra={"partition": self.partition, "error": str(exc)},
                    )
                    stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, 5.0)
        finally:
            try:
                self.group.flush_acks()
                self.group.held.hand_back()
            except redis.RedisError:
                pass  # held entries are claimed once idle
            self.group.held.close()

    def poll_once(self, stop: threading.Event | None = None) -> int:
        """One round: stale entries claimed from dead notifiers, then new ones, lane by lane;
        how many entries it handled."""
        work: dict[Lane, list[Entry]] = {}
        for lane, claimed in self.group.claim_stale(self._settings.read_count).items():
            for (entry_id, _fields), deliveries in claimed.over_limit:
                log.error(
                    "entry delivered too often to the notifier; skipped",
                    extra={"partition": self.partition, "entry": entry_id, "times": deliveries},
                )
                self.group.lane(lane).ack(entry_id)
            if claimed.entries:
                work[lane] = list(claimed.entries)
        read = self.group.read_round(self._settings.read_count, self._settings.read_block_ms)
        for lane, entries in read.items():
            work.setdefault(lane, []).extend(entries)
        for lane, entries in work.items():
            self._handle(self.group.lane(lane), lane, entries)
        return sum(len(entries) for entries in work.values())

    def _handle(self, group: ConsumerGroup, lane: Lane, entries: Sequence[Entry]) -> None:
        ids = [entry_id for entry_id, _ in entries]
        group.hold(ids)
        try:
            calls = [call for entry in entries if (call := _call(entry, lane)) is not None]
            found = self.webhooks.track(calls)
            messages = []
            # Jobs that ended without a completed message (a filter of `started` only): what
            # was kept of them goes with this round's acknowledgements.
            forget = []
            for (kind, entry, _lane, _webhook), tracked in zip(calls, found, strict=True):
                if kind != TRIGGER or tracked is None:
                    continue
                message = message_of(entry, tracked)
                if message is not None:
                    messages.append((message, message.trigger == COMPLETED))
                elif _trigger(entry[1]) == COMPLETED:
                    forget.append(self._names.webhook_job(entry[1]["job_id"]))

            def ack(pipe: Any) -> None:
                pipe.xack(group.stream, group.group, *ids)
                if forget:
                    for key in forget:
                        pipe.delete(key)

            self.webhooks.schedule(messages, _now_ms(), before=ack)
        finally:
            group.release(*ids)
