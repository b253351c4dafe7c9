"""Server selection for test fixtures (wired into conftest.py by the caller).

``redis_server()`` / ``postgres_server()`` yield a URL, picking in this order:
(a) ``REDIS_URL`` / ``DATABASE_URL`` from the environment,
(b) testcontainers, only when a Docker engine answers,
(c) embedded servers in a temporary directory.

``embedded_redis(tmp_dir)`` / ``embedded_postgres(tmp_dir)`` yield a dedicated server object
for fault tests that kill/restart it.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.embedded import EmbeddedPostgres, EmbeddedRedis

REDIS_IMAGE = "redis:7"
POSTGRES_IMAGE = "postgres:16"


@functools.cache
def docker_available() -> bool:
    """True when a Docker engine answers a ping (checked once per session)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _as_psycopg_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg{sep}{rest}" if scheme.startswith("postgres") else url


@contextmanager
def _redis_container() -> Iterator[str]:
    from testcontainers.community.redis import RedisContainer

    with RedisContainer(REDIS_IMAGE) as container:
        host = container.get_container_host_ip()
        yield f"redis://{host}:{container.get_exposed_port(container.port)}/0"


@contextmanager
def _postgres_container() -> Iterator[str]:
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(POSTGRES_IMAGE, driver="psycopg") as container:
        yield _as_psycopg_url(container.get_connection_url())


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield a Redis URL: env ``REDIS_URL``, else a redis:7 container, else embedded."""
    if url := os.environ.get("REDIS_URL"):
        yield url
    elif docker_available():
        with _redis_container() as url:
            yield url
    else:
        with (
            tempfile.TemporaryDirectory(prefix="inferflow-redis-") as tmp,
            EmbeddedRedis(Path(tmp)) as server,
        ):
            yield server.url


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a ``postgresql+psycopg://`` URL: env ``DATABASE_URL``, else a postgres:16
    container, else an embedded server (``fast=True``)."""
    if url := os.environ.get("DATABASE_URL"):
        yield _as_psycopg_url(url)
    elif docker_available():
        with _postgres_container() as url:
            yield url
    else:
        with (
            tempfile.TemporaryDirectory(prefix="inferflow-pg-") as tmp,
            EmbeddedPostgres(Path(tmp), fast=True) as server,
        ):
            yield server.url


@contextmanager
def embedded_redis(tmp_dir: Path) -> Iterator[EmbeddedRedis]:
    """A dedicated, started EmbeddedRedis with data in ``tmp_dir/redis``."""
    with EmbeddedRedis(Path(tmp_dir) / "redis") as server:
        yield server


@contextmanager
def embedded_postgres(tmp_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A dedicated, started EmbeddedPostgres (``fast=True``) with data in ``tmp_dir/postgres``.

    As root with an unreachable ``tmp_dir`` (pytest's 0700 tmp_path), the cluster lives in a
    shared cache dir behind a symlink; it is removed on exit.
    """
    server = EmbeddedPostgres(Path(tmp_dir) / "postgres", fast=True)
    try:
        with server:
            yield server
    finally:
        if server.data_dir.is_symlink():
            shutil.rmtree(server.real_data_dir, ignore_errors=True)
            server.data_dir.unlink()
