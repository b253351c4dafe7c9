"""A running InferFlow (api, consumers, projector) for the end-to-end tests of a module."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest
import redis

from devstack.databases import fresh_database
from devstack.keys import drop_keys_at
from eventlog.names import Names
from tests.e2e.harness import Service

ServiceFactory = Callable[..., Service]


def service_env(redis_url: str, database_url: str, names: Names, models_dir: Path) -> dict:
    return {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "STREAM_PREFIX": names.prefix,
        "MODELS_DIR": str(models_dir),
        "FAULT_INJECTION": "true",
        "INFERENCE_TIMEOUT_MS": "500",
        "RETRY_INITIAL_MS": "5",
        "RETRY_MAX_MS": "20",
        "RETRY_JITTER_MS": "5",
        "READ_BLOCK_MS": "100",
        "CLAIM_IDLE_MS": "1000",
        "CLAIM_INTERVAL_MS": "200",
        "LOG_LEVEL": "INFO",
        "METRICS_PORT": "0",  # services run side by side: a test that wants metrics picks ports
        # The suite runs once more on a partitioned log (make test, on the local cluster).
        "PARTITIONS": os.environ.get("TEST_PARTITIONS", "1"),
    }


@pytest.fixture(scope="module")
def make_service(
    redis_url: str,
    postgres_url: str,
    template_database: str,
    models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceFactory]:
    """Builds services, each on its own prefix and database; stops them all at the end."""
    with ExitStack() as stack:

        def create(redis_url: str = redis_url, **env: str) -> Service:
            names = Names(f"e2e-{uuid.uuid4().hex[:12]}")
            database_url = stack.enter_context(fresh_database(postgres_url, template_database))
            stack.callback(_drop_keys, redis_url, names)
            merged = {**service_env(redis_url, database_url, names, models_dir), **env}
            service = Service(merged, tmp_path_factory.mktemp("service-logs"))
            stack.callback(service.close)
            return service

        yield create


def _drop_keys(url: str, names: Names) -> None:
    # A test may have stopped the server its service ran on (fault tests): nothing to drop.
    with suppress(redis.RedisError):
        drop_keys_at(url, names)


@pytest.fixture(scope="module")
def service(make_service: ServiceFactory) -> Service:
    """The whole service with two consumers, shared by a module's tests."""
    running = make_service()
    running.start_all(consumers=2)
    return running
