"""Server selection for test fixtures and the bench.

``redis_server()`` / ``postgres_server()`` yield a URL, picking in this order:
(a) ``REDIS_URL`` / ``DATABASE_URL`` from the environment,
(b) a container (testcontainers), only when a Docker engine answers,
(c) embedded servers in a temporary directory.

The containers run ``TEST_REDIS_IMAGE`` / ``TEST_POSTGRES_IMAGE`` when set; else the official
image when the engine has it, else the local stand-in (``python -m devstack images``) when it has
that, else the official one by pulling it. An engine that answers but cannot run the image (no
registry to pull from, say) is said in one line, and the embedded server runs instead.

``embedded_redis(tmp_dir)`` / ``embedded_postgres(tmp_dir)`` yield a dedicated server object
for fault tests that kill/restart it.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from devstack.cluster import LocalCluster
from devstack.embedded import EmbeddedPostgres, EmbeddedRedis
from devstack.images import STANDINS

REDIS_IMAGE = "redis:7"
POSTGRES_IMAGE = "postgres:16"
# The reaper container cannot be pulled where there is no registry; every container these
# fixtures start is stopped by them.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")


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


def _has_image(name: str) -> bool:
    import docker

    client = docker.from_env(timeout=10)
    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    finally:
        client.close()
    return True


def container_image(setting: str, official: str, standin: str) -> str:
    """The image a fixture's container runs (see the module's docstring)."""
    if chosen := os.environ.get(setting):
        return chosen
    for candidate in (official, standin):
        if _has_image(candidate):
            return candidate
    return official


def _as_psycopg_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg{sep}{rest}" if scheme.startswith("postgres") else url


def _redis_container() -> tuple[Any, str]:
    from testcontainers.community.redis import RedisContainer

    image = container_image("TEST_REDIS_IMAGE", REDIS_IMAGE, STANDINS.redis)
    container = RedisContainer(image).start()
    host = container.get_container_host_ip()
    return container, f"redis://{host}:{container.get_exposed_port(container.port)}/0"


def _postgres_container() -> tuple[Any, str]:
    from testcontainers.community.postgres import PostgresContainer

    image = container_image("TEST_POSTGRES_IMAGE", POSTGRES_IMAGE, STANDINS.postgres)
    container = PostgresContainer(image, driver="psycopg").start()
    return container, _as_psycopg_url(container.get_connection_url())


def _started(kind: str, start: Callable[[], tuple[Any, str]]) -> tuple[Any, str] | None:
    """The started container and its URL; None, said in one line, when it cannot start."""
    try:
        return start()
    except Exception as exc:  # the engine, the image or the container: each fails its own way
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(
            f"devstack: no {kind} container ({reason}); using an embedded server",
            file=sys.stderr,
        )
        return None


@contextmanager
def _container(kind: str, start: Callable[[], tuple[Any, str]]) -> Iterator[str | None]:
    """A container's URL for the block's length; None when none could be started."""
    started = _started(kind, start) if docker_available() else None
    if started is None:
        yield None
        return
    container, url = started
    try:
        yield url
    finally:
        container.stop()


@contextmanager
def redis_server() -> Iterator[str]:
    """Yield a Redis URL: a local Redis Cluster when ``TEST_REDIS_CLUSTER=1`` (a node of it),
    else env ``REDIS_URL``, else a container, else embedded."""
    if os.environ.get("TEST_REDIS_CLUSTER") == "1":
        with (
            tempfile.TemporaryDirectory(prefix="inferflow-cluster-") as tmp,
            LocalCluster(Path(tmp), masters=3, replicas=1) as cluster,
        ):
            yield cluster.url
        return
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with _container("Redis", _redis_container) as url:
        if url is not None:
            yield url
            return
    with (
        tempfile.TemporaryDirectory(prefix="inferflow-redis-") as tmp,
        EmbeddedRedis(Path(tmp)) as server,
    ):
        yield server.url


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a ``postgresql+psycopg://`` URL: env ``DATABASE_URL``, else a container, else an
    embedded server (``fast=True``)."""
    if url := os.environ.get("DATABASE_URL"):
        yield _as_psycopg_url(url)
        return
    with _container("PostgreSQL", _postgres_container) as url:
        if url is not None:
            yield url
            return
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
