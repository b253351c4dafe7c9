"""Writes to one slot of the log (a partition's), in pipelines: plain commands and scripts.

Scripts go by EVALSHA as plain commands: a redis-py Script called on a pipeline costs a SCRIPT
EXISTS round trip, and redis-py's cluster pipeline refuses `evalsha()`, which it cannot know to
be safe, while the keys of these calls are all in the slot. A call that meets NOSCRIPT (Redis
lost its script cache: a restart, SCRIPT FLUSH) did not run, so it is sent again once its script
is loaded.

With `replicas`, every pipeline runs on the slot's master itself and is followed by WAIT on the
same connection (WAIT counts that connection's writes), raising NotReplicatedError when too few
replicas took the writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from redis.cluster import RedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError

from eventlog.connection import Client
from eventlog.errors import NotReplicatedError

# (script source, KEYS, ARGV) of one EVALSHA
ScriptCall = tuple[str, Sequence[str], Sequence[str]]
Queue = Callable[[Any], None]


def sha1(source: str) -> str:
    """The script's name for EVALSHA (as Redis and redis-py compute it)."""
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


class SlotWriter:
    """Pipelines on the slot of `key`; with `replicas`, on its master and waited for."""

    def __init__(
        self, client: Client, key: str, replicas: int = 0, replicas_timeout_ms: int = 1000
    ) -> None:
        self._redis = client
        self.key = key
        self._replicas = replicas
        self._replicas_timeout_ms = replicas_timeout_ms
        self._loaded: set[str] = set()
        self.shas: dict[str, str] = {}  # script source -> its name for EVALSHA

    def sha(self, source: str) -> str:
        if source not in self.shas:
            self.shas[source] = sha1(source)
        return self.shas[source]

    def scripts(self, calls: Sequence[ScriptCall], before: Queue | None = None) -> list[Any]:
        """Run each call (EVALSHA) after the commands `before` queues, in one round trip; the
        calls' replies, in order. An error of any command or call is raised."""

        def queue(pipe: Any, sent: Sequence[ScriptCall] = calls) -> None:
            for source, keys, argv in sent:
                pipe.execute_command("EVALSHA", self.sha(source), len(keys), *keys, *argv)

        def first(pipe: Any) -> None:
            if before is not None:
                before(pipe)
            queue(pipe)

        replies = self.pipelined(first, raise_on_error=False, sources=[c[0] for c in calls])
        ahead, replies = replies[: len(replies) - len(calls)], replies[len(replies) - len(calls) :]
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            again = [calls[i] for i in missing]
            for source in {source for source, _, _ in again}:
                self.shas[source] = self._redis.script_load(source)
            for i, reply in zip(
                missing,
                self.pipelined(lambda p: queue(p, again), raise_on_error=False),
                strict=True,
            ):
                replies[i] = reply
        for reply in [*ahead, *replies]:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def pipelined(
        self, queue: Queue, raise_on_error: bool = True, sources: Sequence[str] = ()
    ) -> list[Any]:
        """Run what `queue` puts on a pipeline, in one round trip (the scripts of `sources` are
        loaded ahead when waiting for replicas: a call that met NOSCRIPT would run nothing, and
        the WAIT after it would then refuse a write that was never made)."""
        if not self._replicas:
            pipe = self._redis.pipeline(transaction=False)
            queue(pipe)
            return list(pipe.execute(raise_on_error=raise_on_error))
        for source in sources:
            if source not in self._loaded:
                self.shas[source] = self._redis.script_load(source)
                self._loaded.add(source)
        try:
            replies = self._on_master(queue, raise_on_error)
        except (MovedError, AskError, ClusterDownError, RedisConnectionError):
            if not isinstance(self._redis, RedisCluster):
                raise
            # The slot moved (a failover): learn the new map and try once more. A node that
            # answered MOVED ran nothing; the scripts do nothing twice (FINISH nothing for an
            # entry no longer this consumer's, START and CANCEL nothing for a run that moved on).
            self._redis.nodes_manager.initialize()
            replies = self._on_master(queue, raise_on_error)
        *results, acknowledged = replies
        if isinstance(acknowledged, Exception) or int(acknowledged) < self._replicas:
            got = 0 if isinstance(acknowledged, Exception) else int(acknowledged)
            raise NotReplicatedError(got, self._replicas, self._replicas_timeout_ms)
        return results

    def _on_master(self, queue: Queue, raise_on_error: bool) -> list[Any]:
        master: Any = self._redis
        if isinstance(self._redis, RedisCluster):
            node = self._redis.get_node_from_key(self.key)  # type: ignore[no-untyped-call]
            master = self._redis.get_redis_connection(node)
        pipe = master.pipeline(transaction=False)
        queue(pipe)
        pipe.execute_command("WAIT", self._replicas, self._replicas_timeout_ms)
        return list(pipe.execute(raise_on_error=raise_on_error))
