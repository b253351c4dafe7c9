"""The readers that follow lanes' streams for the live event streams of one API process
(GET /v1/jobs/{job_id}/events as Server-Sent Events).

Every stream of this process that follows a job of one lane shares one reader of that lane
(LaneTail): a lane holds every job of its tenant and kind, and each stream reading it alone
would read all of them, so the reads would grow with the number of streams open; shared, they
grow with the lanes followed. A reader polls (XRANGE after the last entry it read, every POLL_S)
and can be poked to read at once (the projector's terminal announcement does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from api.deps import Services
from api.errors import DependencyUnavailableError
from api.guard import guarded
from eventlog.connection import AsyncClient
from eventlog.entries import Entry, range_entries
from eventlog.positions import position
from readmodel import timeline
from readmodel.timeline import TimelineEvent

log = logging.getLogger(__name__)

# How often a lane's shared reader looks for new entries, and how many pages (of
# timeline.PAGE entries) it reads at most before it lets the others have Redis.
POLL_S = 0.15
PAGES_PER_POLL = 10
# A reader whose reads fail (Redis down) waits longer and longer, up to this, between tries.
MAX_BACKOFF_S = 2.0


async def followed(
    svc: Services, follower: Follower, job_id: str, read_to: str
) -> AsyncIterator[list[TimelineEvent]]:
    """The job's events after `read_to`, as they come: first those between it and where the
    lane's reader was when the follower joined (a reader already running may be ahead), then
    what the reader hands over."""
    if position(follower.joined_at) > position(read_to):
        gap: list[Entry] = []
        start = f"({read_to}"
        while True:
            async with guarded("redis", svc.timeout_s):
                found, last = await timeline.scan(
                    svc.redis, follower.tail.stream, job_id, start, follower.joined_at, 1
                )
            gap += found
            if last is None or position(last) >= position(follower.joined_at):
                break
            start = f"({last}"
        yield timeline.timeline(gap, job_id)
    while True:
        yield timeline.timeline(await follower.next(), job_id)


class Follower:
    """A live stream's share of a lane's reader: the entries of its job, handed over as the
    reader finds them."""

    def __init__(self, tail: LaneTail, job_id: str, joined_at: str) -> None:
        self.tail = tail
        self.job_id = job_id
        # Where the reader was when this joined: every entry after it is handed over.
        self.joined_at = joined_at
        self._entries: list[Entry] = []
        self._arrived = asyncio.Event()

    def hand_over(self, entry: Entry) -> None:
        self._entries.append(entry)
        self._arrived.set()

    async def next(self) -> list[Entry]:
        """The entries handed over since the last call, waiting for one if there are none."""
        await self._arrived.wait()
        self._arrived.clear()
        entries, self._entries = self._entries, []
        return entries


class LaneTail:
    """One reader of a lane's stream for every live stream of this process following a job in
    that lane: it reads each entry once and hands it to the followers of its job."""

    def __init__(self, redis: AsyncClient, stream: str, cursor: str, timeout_s: float) -> None:
        self.stream = stream
        # The last entry read: every entry after it goes to the followers there are when it is
        # read (joining and handing over happen between two reads, never during one).
        self.cursor = cursor
        self._redis = redis
        self._timeout_s = timeout_s
        self._followers: dict[str, set[Follower]] = {}
        self._poked = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return sum(len(followers) for followers in self._followers.values())

    def join(self, job_id: str) -> Follower:
        follower = Follower(self, job_id, self.cursor)
        self._followers.setdefault(job_id, set()).add(follower)
        return follower

    def leave(self, follower: Follower) -> None:
        followers = self._followers.get(follower.job_id, set())
        followers.discard(follower)
        if not followers:
            self._followers.pop(follower.job_id, None)

    def poke(self) -> None:
        """Read now, without waiting for the next poll."""
        self._poked.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"lane-tail:{self.stream}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        pause_s = POLL_S
        while True:
            try:
                await self.read()
                pause_s = POLL_S
            except DependencyUnavailableError as exc:
                log.warning("reading %s for event streams: %s", self.stream, exc)
                pause_s = min(pause_s * 2, MAX_BACKOFF_S)
            except Exception:
                # The streams that follow the lane depend on this reader: it reports and goes
                # on rather than leave them waiting for nothing.
                log.exception("reading %s for event streams failed", self.stream)
                pause_s = min(pause_s * 2, MAX_BACKOFF_S)
            try:
                async with asyncio.timeout(pause_s):
                    await self._poked.wait()
            except TimeoutError:
                pass
            self._poked.clear()

    async def read(self) -> None:
        """Read what the lane got since the last read (up to PAGES_PER_POLL pages) and hand
        each entry to its job's followers."""
        for _ in range(PAGES_PER_POLL):
            async with guarded("redis", self._timeout_s):
                reply: Any = await self._redis.xrange(
                    self.stream, f"({self.cursor}", "+", count=timeline.PAGE
                )
            batch = range_entries(reply)
            self._hand_over(batch)
            if len(batch) < timeline.PAGE:
                return

    def _hand_over(self, batch: Iterable[Entry]) -> None:
        for entry in batch:
            for follower in self._followers.get(entry[1].get("job_id", ""), ()):
                follower.hand_over(entry)
            self.cursor = entry[0]


class LaneTails:
    """The lane readers of one process, by stream: one runs while a live stream follows a job
    of its lane."""

    def __init__(self, redis: AsyncClient, timeout_s: float) -> None:
        self._redis = redis
        self._timeout_s = timeout_s
        self._tails: dict[str, LaneTail] = {}

    def __len__(self) -> int:
        return len(self._tails)

    @contextmanager
    def follow(self, stream: str, job_id: str, read_to: str) -> Iterator[Follower]:
        """Follow `job_id` in `stream` for the block's duration. A new reader starts after
        `read_to` (where the caller read the stream to); one already running goes on from where
        it is, which the follower's `joined_at` says."""
        tail = self._tails.get(stream)
        if tail is None:
            tail = self._tails[stream] = LaneTail(self._redis, stream, read_to, self._timeout_s)
            tail.start()
        follower = tail.join(job_id)
        try:
            yield follower
        finally:
            tail.leave(follower)
            if len(tail) == 0 and self._tails.get(stream) is tail:
                del self._tails[stream]
                tail.stop()
