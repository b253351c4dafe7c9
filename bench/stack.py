"""A whole InferFlow on this machine for measurements: servers, migrations, model, roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis

from classifier.train import DEFAULT_DATA, DEFAULT_VERSION, train
from infra.migrations import upgrade
from infra.names import Names
from tests.conftest import fresh_database
from tests.e2e.harness import Service
from tests.servers import postgres_server, redis_server


@contextmanager
def running_stack(work: Path, consumers: int = 2, **env: str) -> Iterator[Service]:
    """Servers from REDIS_URL / DATABASE_URL (else embedded), a fresh database and key prefix,
    the default model, and the projector, `consumers` consumers and the API."""
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        postgres_url = stack.enter_context(postgres_server())
        database = stack.enter_context(fresh_database(postgres_url, "template1"))
        upgrade(database)
        train(DEFAULT_DATA, DEFAULT_VERSION, work / "models")
        names = Names(f"bench-{uuid.uuid4().hex[:8]}")
        stack.callback(_drop_keys, redis_url, names)
        settings = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database,
            "STREAM_PREFIX": names.prefix,
            "MODELS_DIR": str(work / "models"),
            "LOG_LEVEL": "WARNING",
            **env,
        }
        service = Service(settings, work, names)
        stack.callback(service.close)
        service.start_all(consumers=consumers)
        yield service


def _drop_keys(url: str, names: Names) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{names.prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
