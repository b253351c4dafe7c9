"""A whole InferFlow on this machine for measurements: servers, migrations, model, roles.

Also the reference endpoint (bench/reference.py) as its own uvicorn process on the same Redis.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import redis

from classifier.train import DEFAULT_DATA, DEFAULT_VERSION, train
from infra.migrations import upgrade
from infra.names import Names
from tests.conftest import fresh_database
from tests.e2e.harness import Service, free_port
from tests.servers import postgres_server, redis_server

ROLES = ("projector", "consumers", "api")


@contextmanager
def running_stack(
    work: Path,
    consumers: int = 2,
    api_workers: int = 1,
    roles: Collection[str] = ROLES,
    env: Mapping[str, str] | None = None,
) -> Iterator[Service]:
    """Servers from REDIS_URL / DATABASE_URL (else embedded), a fresh database and key prefix,
    the default model, and the `roles` started: projector, `consumers` consumers, the API."""
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        postgres_url = stack.enter_context(postgres_server())
        database = stack.enter_context(fresh_database(postgres_url, "template1"))
        upgrade(database)
        models = work / "models"
        if not (models / f"{DEFAULT_VERSION}.json").exists():  # one training per bench run
            train(DEFAULT_DATA, DEFAULT_VERSION, models)
        names = Names(f"bench-{uuid.uuid4().hex[:8]}")
        stack.callback(_drop_keys, redis_url, names)
        settings = {
            "REDIS_URL": redis_url,
            "DATABASE_URL": database,
            "STREAM_PREFIX": names.prefix,
            "MODELS_DIR": str(models),
            "LOG_LEVEL": "WARNING",
            "API_WORKERS": str(api_workers),
            # Several stacks may run on one machine (scaling, other benches): no fixed ports.
            "METRICS_PORT": "0",
            **(env or {}),
        }
        service = Service(settings, work, names)
        stack.callback(service.close)
        if "projector" in roles:
            service.start("projector")
        if "consumers" in roles:
            start_consumers(service, consumers)
        if "api" in roles:
            service.start("api")
        yield service


def start_consumers(service: Service, count: int) -> None:
    for i in range(count):
        service.start("consumer", f"consumer-{i}")


def _drop_keys(url: str, names: Names) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{names.prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@contextmanager
def reference_server(redis_url: str, workers: int = 1, stream: str = "") -> Iterator[str]:
    """The reference endpoint with as many uvicorn workers as the API; yields its URL."""
    port, stream = free_port(), stream or f"bench-reference-{uuid.uuid4().hex[:8]}"
    command = [sys.executable, "-m", "uvicorn", "bench.reference:create_app", "--factory"]
    command += ["--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "REDIS_URL": redis_url, "REFERENCE_STREAM": stream}
    proc = subprocess.Popen(command, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(15)
        client = redis.Redis.from_url(redis_url)
        client.delete(stream)
        client.close()


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("the reference endpoint exited")
        try:
            httpx.post(f"{url}/append", json={"text": "warm-up"}, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the reference endpoint did not start")
