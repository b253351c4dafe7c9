"""The bench's Celery reference on the real Redis and PostgreSQL: it starts, takes jobs through
its API, runs them in its Celery worker, stores every state in its own database, and leaves no
broker keys behind."""

from __future__ import annotations

import time

import httpx
import pytest
import redis

pytest.importorskip("celery", reason="celery is not installed (the dev extra pins it)")

from bench.celeryref.service import CeleryService, celery_service

JOBS = 5
UNKNOWN = "00000000-0000-0000-0000-000000000000"


def finished(service: CeleryService, ids: list[str]) -> list[dict]:
    deadline = time.monotonic() + 15
    while True:
        answers = [httpx.get(f"{service.url}/v1/jobs/{job_id}").json() for job_id in ids]
        if all(a["status"] == "succeeded" for a in answers) or time.monotonic() > deadline:
            return answers
        time.sleep(0.05)


def test_the_celery_reference_takes_jobs_finishes_them_and_cleans_up(
    redis_url, redis_cluster, postgres_url, tmp_path, models_dir
):
    if redis_cluster:
        pytest.skip("Celery's Redis broker does not speak Redis Cluster")
    (tmp_path / "models").symlink_to(models_dir)
    client = redis.Redis.from_url(redis_url)
    before = set(client.keys("celeryref-*"))
    with celery_service(redis_url, postgres_url, tmp_path, concurrency=2) as service:
        assert {name for name, _ in service.roles()} == {"celery api", "celery worker"}
        texts = [f"win a prize now #{n}" for n in range(JOBS)]
        submitted = [httpx.post(f"{service.url}/v1/inference", json={"text": t}) for t in texts]
        assert [r.status_code for r in submitted] == [202] * JOBS
        ids = [r.json()["job_id"] for r in submitted]
        answers = finished(service, ids)
        assert [a["status"] for a in answers] == ["succeeded"] * JOBS
        assert all(a["result_label"] and a["attempts"] == 1 for a in answers)
        assert service.statuses(ids) == dict.fromkeys(ids, "succeeded")
        assert httpx.get(f"{service.url}/v1/jobs/{UNKNOWN}").status_code == 404
        assert httpx.post(f"{service.url}/v1/inference", json={"text": ""}).status_code == 422
    assert set(client.keys("celeryref-*")) == before
    client.close()
