"""Shared fixtures: real Redis and PostgreSQL servers, isolated per test, and a trained model.

Servers come from the environment (REDIS_URL, DATABASE_URL), else testcontainers when a Docker
engine answers, else embedded servers (devstack/servers.py); with TEST_REDIS_CLUSTER=1, Redis is
a local Redis Cluster of 3 masters with a replica each. Each test gets its own stream prefix
and its own database cloned from a migrated template, so tests never see each other's data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from devstack import servers
from devstack.databases import fresh_database, migrated_template
from devstack.keys import drop_keys
from eventlog.connection import Client, connect, is_cluster
from eventlog.names import Names

MODEL_VERSION = "spam-tfidf-lr-v1"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with servers.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with servers.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def template_database(postgres_url: str) -> Iterator[str]:
    """A database with every migration applied, cloned for each test."""
    with migrated_template(postgres_url) as name:
        yield name


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


@pytest.fixture(scope="session")
def redis_cluster(redis_url: str) -> bool:
    """Whether the tests run on a Redis Cluster (TEST_REDIS_CLUSTER=1)."""
    return is_cluster(redis_url)


@pytest.fixture
def redis_client(redis_url: str, redis_cluster: bool, names: Names) -> Iterator[Client]:
    client = connect(redis_url, redis_cluster)
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
