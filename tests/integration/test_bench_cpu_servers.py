"""The bench counts the CPU of its own servers' processes only (bench.cpu.Servers), on the real
PostgreSQL and Redis servers: another program's clients of a shared server are left out."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

from bench.cpu import Servers, sample
from devstack.databases import fresh_database


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def other_database(postgres_url: str, template_database: str) -> Iterator[str]:
    with fresh_database(postgres_url, template_database) as url:
        yield url


def local_pids(role: str, found: dict[int, tuple[str, float]]) -> set[int]:
    return {pid for pid, (name, _) in found.items() if name == role}


def test_only_the_backends_of_the_runs_databases_count(database_url: str, other_database: str):
    with (
        psycopg.connect(libpq(database_url)) as ours,
        psycopg.connect(libpq(other_database)) as other,
    ):
        everything = local_pids("postgres", sample({}))
        if ours.info.backend_pid not in everything:
            pytest.skip("PostgreSQL does not run on this machine (a container's processes)")
        counted = local_pids("postgres", sample({}, Servers.of("redis://h:1", False, database_url)))
        assert ours.info.backend_pid in counted
        assert other.info.backend_pid not in counted
        # The server's own processes (the postmaster, its writers) are everyone's, and count.
        assert counted - {ours.info.backend_pid}
        assert other.info.backend_pid in everything


def test_only_the_redis_server_of_the_runs_port_counts(redis_url: str, redis_cluster: bool):
    if redis_cluster:
        assert Servers.of(redis_url, True).redis_ports is None  # every node counts
        return
    client = redis.Redis.from_url(redis_url)
    try:
        pid = int(client.info("server")["process_id"])
    finally:
        client.close()
    if pid not in local_pids("redis", sample({})):
        pytest.skip("Redis does not run on this machine's process table (a container's)")
    assert pid in local_pids("redis", sample({}, Servers.of(redis_url, False)))
    assert pid not in local_pids("redis", sample({}, Servers(redis_ports=frozenset({1}))))
