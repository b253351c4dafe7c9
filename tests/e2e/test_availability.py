"""Reads before projection, jobs accepted with no worker running, and dependencies going down."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e


def test_a_job_is_readable_at_once_and_runs_when_workers_arrive(make_service):
    service: Service = make_service()
    service.start("api")  # no projector, no consumer yet
    response = service.submit("limited time offer, click now")
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    job = service.http.get(f"/v1/jobs/{job_id}")
    assert job.status_code == 200
    assert job.json()["status"] == "queued"
    service.start("consumer", "late-consumer")
    service.start("projector")
    assert service.wait_terminal(job_id)["result"]["label"] == "spam"


def test_ready_is_503_while_redis_is_down_and_submissions_get_503(make_service, tmp_path):
    from devstack.servers import embedded_redis

    with embedded_redis(tmp_path) as server:
        service: Service = make_service(redis_url=server.url, DEPENDENCY_TIMEOUT_MS="500")
        service.start("api")
        assert service.http.get("/ready").status_code == 200
        server.kill()
        ready = service.http.get("/ready")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        assert ready.json()["checks"]["redis"]["status"] == "down"
        refused = service.submit("hello")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"]
        server.restart()
        assert service.http.get("/ready").status_code == 200
        assert service.submit("hello").status_code == 202


def test_ready_is_503_while_postgres_is_down_and_submissions_still_work(make_service, tmp_path):
    from devstack.servers import embedded_postgres
    from readmodel.migrations import upgrade

    with embedded_postgres(tmp_path) as server:
        upgrade(server.url)
        service: Service = make_service(DATABASE_URL=server.url, DEPENDENCY_TIMEOUT_MS="1000")
        service.start("api")
        never_used = service.new_key("default", "submit")
        assert service.http.get("/ready").status_code == 200
        # The API knows the key it has read (and its tenant's limits): it judges it as last
        # read while PostgreSQL is down.
        assert service.submit("known key").status_code == 202
        server.kill()
        ready = service.http.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"]["status"] == "down"
        assert "postgres" in ready.json()["detail"]
        # The log, not the database, accepts jobs: a 202 still means the job is stored.
        accepted = service.submit("limited time offer, click now")
        assert accepted.status_code == 202
        # A key this process never read cannot be judged until PostgreSQL answers.
        unknown = service.client(never_used).post("/v1/inference", json={"text": "x"})
        assert unknown.status_code == 503
        job = service.http.get(f"/v1/jobs/{accepted.json()['job_id']}")
        assert job.status_code == 503
        assert job.headers["content-type"] == "application/problem+json"
        server.start()
        assert service.http.get("/ready").status_code == 200
