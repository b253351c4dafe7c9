"""A whole InferFlow on this machine for measurements: servers, migrations, model, roles, and
an admin API key that the bench's clients send, as every client of the API does.

Also the reference endpoint (bench/reference.py) as its own uvicorn process on the same Redis.
"""

from __future__ import annotations

import asyncio
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
from sqlalchemy.ext.asyncio import create_async_engine

from api.keys import KeyStore, Scope
from classifier.train import DEFAULT_DATA, DEFAULT_VERSION, train
from devstack.databases import fresh_database
from devstack.keys import drop_keys_at
from devstack.ports import free_port
from devstack.roles import Roles, side_by_side
from devstack.servers import postgres_server, redis_server
from domain.tenants import DEFAULT_TENANT
from eventlog.names import Names
from readmodel.migrations import upgrade

ROLES = ("projector", "consumers", "api")


class Stack(Roles):
    """The roles of a bench's stack, and the API key its load sends."""

    def __init__(self, env: Mapping[str, str], log_dir: Path, api_key: str) -> None:
        super().__init__(env, log_dir)
        self.api_key = api_key

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of the key, for an HTTP client of the API."""
        return {"Authorization": f"Bearer {self.api_key}"}


def admin_key(database_url: str, name: str = "bench") -> str:
    """A new admin key of the default tenant, made in the stack's database."""
    return tenant_key(database_url, DEFAULT_TENANT, (Scope.ADMIN,), name)


def tenant_key(
    database_url: str,
    tenant: str,
    scopes: Collection[Scope] = (Scope.SUBMIT, Scope.READ),
    name: str = "bench",
) -> str:
    """A new key of `tenant` (by default one that submits and reads its own jobs, as a
    tenant's client), made in the stack's database."""

    async def create() -> str:
        engine = create_async_engine(database_url)
        try:
            _record, key = await KeyStore(engine).create(tenant, scopes, name)
            return key
        finally:
            await engine.dispose()

    return asyncio.run(create())


@contextmanager
def running_stack(
    work: Path,
    consumers: int = 2,
    api_workers: int = 1,
    roles: Collection[str] = ROLES,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Servers from REDIS_URL / DATABASE_URL (else embedded), a fresh database and key prefix,
    an admin API key, the default model, and the `roles` started: projector, `consumers`
    consumers, the API."""
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server())
        postgres_url = stack.enter_context(postgres_server())
        database = stack.enter_context(fresh_database(postgres_url, "template1"))
        upgrade(database)
        key = admin_key(database)
        models = work / "models"
        if not (models / f"{DEFAULT_VERSION}.json").exists():  # one training per bench run
            train(DEFAULT_DATA, DEFAULT_VERSION, models)
        names = Names(f"bench-{uuid.uuid4().hex[:8]}")
        stack.callback(drop_keys_at, redis_url, names)
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
        running = Stack(side_by_side(settings), work, key)
        stack.callback(running.stop_all)
        if "projector" in roles:
            running.start("projector")
        if "consumers" in roles:
            running.start_consumers(consumers)
        if "api" in roles:
            running.start("api")
        yield running


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
