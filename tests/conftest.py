"""Shared fixtures: real Redis and PostgreSQL servers, isolated per test, and a trained model.

Servers come from the environment (REDIS_URL, DATABASE_URL), else testcontainers when a Docker
engine answers, else embedded servers (tests/servers.py). Each test gets its own stream prefix
and its own database cloned from a migrated template, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from infra.migrations import upgrade
from infra.names import Names
from tests import servers

MODEL_VERSION = "spam-tfidf-lr-v1"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with servers.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with servers.postgres_server() as url:
        yield url


def _admin(url: str) -> psycopg.Connection:
    target = make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(target.render_as_string(hide_password=False), autocommit=True)


def _database_url(url: str, name: str) -> str:
    target = make_url(url).set(drivername="postgresql+psycopg", database=name)
    return target.render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_database(postgres_url: str) -> Iterator[str]:
    """A database with every migration applied, cloned for each test."""
    name = f"inferflow_tmpl_{uuid.uuid4().hex[:8]}"
    with _admin(postgres_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(_database_url(postgres_url, name))
    yield name
    with _admin(postgres_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(postgres_url: str, template: str) -> Iterator[str]:
    """A new database cloned from the migrated template, dropped afterwards."""
    name = f"inferflow_test_{uuid.uuid4().hex[:12]}"
    with _admin(postgres_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _database_url(postgres_url, name)
    finally:
        with _admin(postgres_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(postgres_url: str, template_database: str) -> Iterator[str]:
    with fresh_database(postgres_url, template_database) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def names() -> Names:
    return Names(f"test-{uuid.uuid4().hex[:12]}")


def drop_keys(client: redis.Redis, names: Names) -> None:
    keys = list(client.scan_iter(match=f"{names.prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_client(redis_url: str, names: Names) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    drop_keys(client, names)
    client.close()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default model, trained once per session on the shipped corpus."""
    from classifier.train import DEFAULT_DATA, train

    directory = tmp_path_factory.mktemp("models")
    train(DEFAULT_DATA, MODEL_VERSION, directory)
    return directory
