"""Requests waiting for jobs to become terminal, and the subscription that wakes them.

The projector publishes the ids of the jobs each batch made terminal, after the batch committed,
with their rows when the batch was small (readmodel.announcement). Each API process keeps one
subscription to that channel and wakes the requests registered for those ids; they answer with
the row, or read the job again when the message had none. Pub/sub is not durable, so
every time the subscription is (re)established all waiters are woken to re-read: a message
published while this process was not listening is never waited out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from api.terminal import DEFAULT_ENTRIES, TerminalJobs
from api.unfinished import UnfinishedJobs
from eventlog.connection import AsyncClient, connect_async
from readmodel import announcement

log = logging.getLogger(__name__)

# A quiet subscription is checked this often, so a connection that died without a word (a
# host gone, a dropped route) is noticed and replaced.
PING_INTERVAL_S = 10.0
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class Watch:
    """One request's interest in one job."""

    __slots__ = ("_event", "_row", "abandoned", "job_id")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.abandoned = False
        self._event = asyncio.Event()
        self._row: str | None = None

    def wake(self, row: str | None = None) -> None:
        """Wake the wait; `row` is the job's terminal row as JSON, when the announcement held it."""
        self._row = row or self._row
        self._event.set()

    def take_row(self) -> str | None:
        """The row a wake brought, once."""
        row, self._row = self._row, None
        return row

    def abandon(self) -> None:
        """Stop waiting for good (the client went away)."""
        self.abandoned = True
        self._event.set()

    async def wait(self, deadline: float) -> bool:
        """True when woken before the event loop's clock reaches `deadline`, else False.

        A wake that came before this call counts, so none is lost between two waits.
        """
        try:
            async with asyncio.timeout_at(deadline):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class Waiters:
    """The watches of one process, by job id; and the terminal jobs it was told of or read
    (`terminal`) and the unfinished ones it read lately (`unfinished`), which reads answer
    from."""

    def __init__(
        self, terminal_entries: int = DEFAULT_ENTRIES, unfinished_fresh_ms: int = 0
    ) -> None:
        self._by_job: dict[str, set[Watch]] = {}
        self.terminal = TerminalJobs(terminal_entries)
        self.unfinished = UnfinishedJobs(unfinished_fresh_ms)

    def __len__(self) -> int:
        return sum(len(watches) for watches in self._by_job.values())

    @contextmanager
    def watch(self, job_id: str) -> Iterator[Watch]:
        """Register a watch for the block's duration; it is removed however the block ends."""
        watch = Watch(job_id)
        self._by_job.setdefault(job_id, set()).add(watch)
        try:
            yield watch
        finally:
            self._forget(watch)

    def _forget(self, watch: Watch) -> None:
        watches = self._by_job.get(watch.job_id)
        if watches is None:
            return
        watches.discard(watch)
        if not watches:
            del self._by_job[watch.job_id]

    def wake(self, job_ids: Iterable[str], rows: Mapping[str, str | None] | None = None) -> int:
        """Wake the watches of `job_ids`, with their rows from `rows` where it has them;
        returns how many were woken."""
        rows = rows or {}
        woken = 0
        for job_id in job_ids:
            for watch in self._by_job.get(job_id, ()):
                watch.wake(rows.get(job_id))
                woken += 1
        return woken

    def wake_all(self) -> int:
        return self.wake(list(self._by_job))


class TerminalListener:
    """Keeps one subscription to the terminal channel alive and wakes the waiters it names.

    Redis being down never stops the API: the listener retries with backoff meanwhile, and the
    waits simply run to their timeout.
    """

    def __init__(
        self,
        redis_url: str,
        cluster: bool,
        channel: str,
        waiters: Waiters,
        connect_timeout_s: float,
    ) -> None:
        self._url = redis_url
        self._cluster = cluster
        self._channel = channel
        self._waiters = waiters
        self._timeout_s = connect_timeout_s
        self._task: asyncio.Task[None] | None = None
        self.subscribed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="terminal-listener")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        backoff_s = FIRST_BACKOFF_S
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                log.warning("terminal-job subscription down (%s); retry in %.1f s", exc, backoff_s)
            backoff_s = FIRST_BACKOFF_S if self.subscribed else min(backoff_s * 2, MAX_BACKOFF_S)
            self.subscribed = False
            await asyncio.sleep(backoff_s)

    def _client(self) -> AsyncClient:
        # No retries inside redis-py: a silent reconnect would hide the messages lost meanwhile.
        return connect_async(
            self._url,
            self._cluster,
            socket_connect_timeout=self._timeout_s,
            socket_timeout=self._timeout_s,
            retry=Retry(NoBackoff(), 0),
            client_name=f"{self._channel}:listener",
        )

    async def _listen(self) -> None:
        client = self._client()
        if isinstance(client, AsyncRedisCluster):
            await client.initialize()  # its pub/sub picks a node from the slot map
        pubsub: Any = client.pubsub()  # redis-py leaves PubSub partly untyped
        try:
            await pubsub.subscribe(self._channel)
            await self._receive(pubsub)
        finally:
            await pubsub.aclose()
            await client.aclose()

    async def _receive(self, pubsub: Any) -> None:
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=PING_INTERVAL_S)
            if message is not None:
                pinged = False
                self._dispatch(message)
            elif pinged:
                raise RedisConnectionError(f"no answer to PING within {PING_INTERVAL_S:g} s")
            else:
                await pubsub.ping()
                pinged = True

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "message":
            announced = announcement.decode(message["data"])
            self._waiters.unfinished.forget(announced)
            self._waiters.terminal.announced(announced)
            self._waiters.wake(announced, rows=announced)
        elif kind == "subscribe":
            # From now on nothing is missed; what was published before, the re-reads will see.
            self.subscribed = True
            # Announcements may have been missed while unsubscribed: no unfinished answer is
            # trusted past this point.
            self._waiters.unfinished.clear()
            woken = self._waiters.wake_all()
            log.info("listening on %s for terminal jobs (%d waiters re-read)", self._channel, woken)
