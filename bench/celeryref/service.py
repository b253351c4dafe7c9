"""The Celery reference as processes: a fresh database, its table, a uvicorn API (one worker)
and a Celery worker (prefork, 2 slots by default), on the Redis and PostgreSQL of the bench."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis

from bench import memory
from bench.celeryref import settings
from bench.checkpoint import plain_url
from classifier.train import DEFAULT_DATA, DEFAULT_VERSION, train
from devstack.databases import fresh_database
from devstack.ports import free_port

START_LIMIT_S = 60.0


@dataclass
class CeleryService:
    url: str
    database_url: str  # libpq
    procs: dict[str, subprocess.Popen[bytes]]

    def roles(self) -> list[tuple[str, int]]:
        """The live processes by role (bench.cpu samples their children too: the pool's)."""
        return [(name, proc.pid) for name, proc in self.procs.items() if proc.poll() is None]

    def memory_mb(self) -> dict[str, dict[int, float]]:
        return {name: memory.tree_rss_mb(pid) for name, pid in self.roles()}

    def statuses(self, job_ids: list[str]) -> dict[str, str]:
        """Each job's status in the database (a job it never stored is absent)."""
        with psycopg.connect(self.database_url) as conn:
            rows = conn.execute(
                "SELECT job_id::text, status FROM jobs WHERE job_id = ANY(%s::uuid[])", (job_ids,)
            ).fetchall()
        return dict(rows)


@contextmanager
def celery_service(
    redis_url: str,
    postgres_url: str,
    work: Path,
    concurrency: int = 2,
    pool: str = "prefork",
) -> Iterator[CeleryService]:
    """Start the reference on the servers of `redis_url` and `postgres_url`; stop it and drop
    its database and broker keys afterwards."""
    with ExitStack() as stack:
        database = plain_url(stack.enter_context(fresh_database(postgres_url, "template1")))
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(settings.SCHEMA)
        models = work / "models"
        if not (models / f"{DEFAULT_VERSION}.json").exists():
            train(DEFAULT_DATA, DEFAULT_VERSION, models)
        prefix = f"celeryref-{uuid.uuid4().hex[:8]}:"
        stack.callback(_drop_keys, redis_url, prefix)
        env = {
            **os.environ,
            settings.BROKER_URL: redis_url,
            settings.KEY_PREFIX: prefix,
            settings.DATABASE_URL: database,
            settings.MODELS_DIR: str(models),
            settings.MODEL_VERSION: DEFAULT_VERSION,
        }
        port = free_port()
        procs: dict[str, subprocess.Popen[bytes]] = {}
        stack.callback(_stop, procs)
        # --quiet (a global option, before the command): no banner in the bench's report.
        worker = [sys.executable, "-m", "celery", "--quiet", "-A", "bench.celeryref.worker"]
        worker += ["worker"]
        worker += ["--pool", pool, "--concurrency", str(concurrency), "--loglevel", "WARNING"]
        worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        procs["celery worker"] = subprocess.Popen(worker, env=env)
        api = [sys.executable, "-m", "uvicorn", "bench.celeryref.app:create_app", "--factory"]
        api += ["--port", str(port), "--workers", "1", "--log-level", "warning"]
        api += ["--no-access-log"]
        procs["celery api"] = subprocess.Popen(api, env=env)
        service = CeleryService(f"http://127.0.0.1:{port}", database, procs)
        _wait_up(service)
        yield service


def _wait_up(service: CeleryService) -> None:
    """Up once a job goes through: the API answers and a worker has taken a task."""
    deadline = time.monotonic() + START_LIMIT_S
    job_id = ""
    while time.monotonic() < deadline:
        for name, proc in service.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"the Celery reference's {name} exited ({proc.returncode})")
        try:
            if not job_id:
                reply = httpx.post(f"{service.url}/v1/inference", json={"text": "warm-up"})
                job_id = reply.json()["job_id"]
            elif service.statuses([job_id]).get(job_id) == "succeeded":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the Celery reference did not start")


def _stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _drop_keys(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
