"""Writes that answer only once replicas hold them (`SUBMIT_REPLICAS`, Redis's WAIT).

Redis replicates asynchronously: a master that acknowledged a write and dies before sending it
on takes the write with it, and the replica that takes over never had it. For the log that
would be an accepted job lost. With `replicas` above 0, every write that accepts a job (the
Idempotency-Key binding and the append) is followed by `WAIT replicas timeout` on the same
connection, and the job is answered 202 only if enough replicas acknowledged it; otherwise the
request fails as NotReplicatedError (503: retry it under its Idempotency-Key, which then names
the same job). It costs a round trip to the replica per write, and while a master has fewer
live replicas than asked, every submission to its partitions is refused.

WAIT counts the writes of its own connection, so the scripts and the WAIT go in one pipeline to
the master of their keys' slot: on a cluster, through a client of that node itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import AskError, ClusterDownError, MovedError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from eventlog.connection import AsyncClient
from eventlog.errors import NotReplicatedError

# (script source, KEYS, ARGV) of one EVAL
Call = tuple[str, Sequence[str], Sequence[str]]


@dataclass(frozen=True, slots=True)
class ReplicaWait:
    replicas: int = 0
    timeout_ms: int = 1000


@dataclass
class ReplicatedWriter:
    client: AsyncClient
    wait: ReplicaWait
    _nodes: dict[str, aioredis.Redis] = field(default_factory=dict)

    async def run(self, calls: Sequence[Call]) -> list[Any]:
        """Run `calls`, each an atomic script, on the masters of their keys' slots (the calls of
        one master in one pipeline, in their order, then one WAIT), the masters concurrently;
        the replies in the calls' order, once enough replicas hold every write."""
        try:
            return await self._run(calls)
        except (ResponseError, RedisConnectionError) as exc:
            if not isinstance(self.client, AsyncRedisCluster) or not _moved(exc):
                raise
            # A slot moved (a failover, a reshard): learn the new map, try once more. Running a
            # call again is safe: RESERVE and SUBMIT do nothing the second time.
            await self.client.nodes_manager.initialize()
            return await self._run(calls)

    async def _run(self, calls: Sequence[Call]) -> list[Any]:
        groups: dict[int, tuple[Any, list[int]]] = {}
        for index, (_, keys, _) in enumerate(calls):
            master = await self._master(keys[0])
            groups.setdefault(id(master), (master, []))[1].append(index)
        replies: list[Any] = [None] * len(calls)

        async def on(master: Any, indexes: list[int]) -> None:
            pipe = master.pipeline(transaction=False)
            for i in indexes:
                source, keys, argv = calls[i]
                # EVAL: the scripts are small, and a node's own client may not have loaded them.
                pipe.eval(source, len(keys), *keys, *argv)
            pipe.execute_command("WAIT", self.wait.replicas, self.wait.timeout_ms)
            *results, acknowledged = await pipe.execute()
            if int(acknowledged) < self.wait.replicas:
                raise NotReplicatedError(
                    int(acknowledged), self.wait.replicas, self.wait.timeout_ms
                )
            for i, result in zip(indexes, results, strict=True):
                replies[i] = result

        await asyncio.gather(*(on(master, indexes) for master, indexes in groups.values()))
        return replies

    async def _master(self, key: str) -> aioredis.Redis | AsyncRedisCluster:
        if not isinstance(self.client, AsyncRedisCluster):
            return self.client
        await self.client.initialize()
        node = self.client.get_node_from_key(key)
        if node is None:  # pragma: no cover - get_node_from_key raises for uncovered slots
            raise RedisConnectionError(f"no master for {key}")
        if node.name not in self._nodes:
            options = self.client.nodes_manager.connection_kwargs
            timeouts = {
                k: options[k] for k in ("socket_timeout", "socket_connect_timeout") if k in options
            }
            self._nodes[node.name] = aioredis.Redis(
                host=node.host, port=int(node.port), decode_responses=True, **timeouts
            )
        return self._nodes[node.name]

    async def close(self) -> None:
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()


def _moved(exc: Exception) -> bool:
    # By type: in a pipeline, redis-py rewrites the message ("Command # 1 ... caused error").
    return isinstance(exc, RedisConnectionError | MovedError | AskError | ClusterDownError)
