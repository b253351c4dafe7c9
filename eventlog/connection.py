"""Clients for the log's Redis: one server, or a Redis Cluster found behind the same URL.

A user points `REDIS_URL` at one server or at any node of a cluster; which it is, the server
says (`INFO cluster`). On a cluster the client is redis-py's RedisCluster, which learns the
slot map from that node, sends each command to the master of its keys' slot and follows the
topology when slots move or a replica takes over.

`REDIS_CLUSTER` (`auto`, `on`, `off`) settles it without asking, for a process that must start
while Redis is unreachable.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

log = logging.getLogger(__name__)

ClusterMode = Literal["auto", "on", "off"]

# Either client: the commands InferFlow uses are the same on both.
Client = redis.Redis | RedisCluster
AsyncClient = aioredis.Redis | AsyncRedisCluster


def is_cluster(url: str, timeout_s: float = 2.0) -> bool:
    """Whether the server at `url` is a node of a Redis Cluster; raises if it cannot be asked."""
    with redis.Redis.from_url(
        url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
    ) as probe:
        info: dict[str, Any] = probe.info("cluster")
    return bool(info.get("cluster_enabled"))


def cluster_mode(url: str, mode: ClusterMode = "auto", wait_s: float = 0.0) -> bool:
    """On a cluster? `auto` asks the server, for up to `wait_s` while it does not answer, and
    takes it for one server if it never does."""
    if mode != "auto":
        return mode == "on"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return is_cluster(url)
        except (redis.RedisError, OSError) as exc:
            if time.monotonic() >= deadline:
                log.warning(
                    "Redis did not answer (%s): taken for one server; set REDIS_CLUSTER=on "
                    "if it is a cluster",
                    exc,
                )
                return False
            time.sleep(0.2)


def connect(url: str, cluster: bool, **options: Any) -> Client:
    """A blocking client (decoded replies) for one server or a cluster."""
    if cluster:
        return RedisCluster.from_url(url, decode_responses=True, **options)
    return redis.Redis.from_url(url, decode_responses=True, **options)


def connect_async(url: str, cluster: bool, **options: Any) -> AsyncClient:
    """An asyncio client (decoded replies) for one server or a cluster."""
    if cluster:
        return AsyncRedisCluster.from_url(url, decode_responses=True, **options)
    return aioredis.Redis.from_url(url, decode_responses=True, **options)


# redis-py 8.1's asyncio connections let a write on a transport the event loop has closed
# escape as the loop's own error, not as ConnectionError (redis/redis-py#4287), so neither its
# retries nor a caller's `except RedisError` see it. Seen here on a cluster under a burst of
# new connections. Recognised by message, so that nothing else passes for it.
_CLOSED_TRANSPORT = (
    "unable to perform operation on <TCPTransport closed=True",  # uvloop
    "'NoneType' object has no attribute 'writelines'",
    "'NoneType' object is not callable",  # CPython 3.12, 3.14.0
    "'NoneType' object has no attribute '_add_writer'",  # CPython 3.13
)


def closed_transport(exc: BaseException) -> bool:
    """Whether `exc` is a write on a closed connection that redis-py failed to translate."""
    if not isinstance(exc, RuntimeError | AttributeError | TypeError):
        return False
    return any(str(exc).startswith(text) for text in _CLOSED_TRANSPORT)
