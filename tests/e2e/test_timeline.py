"""GET /v1/jobs/{job_id}/events against real consumers and a real projector.

The API runs in-process with the events router mounted, so this test does not depend on
api/app.py including it yet; once it does, the same router is simply already there.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.routes import events
from api.settings import ApiSettings
from domain.ids import new_job_id
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import TERMINAL, Service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def workers(make_service: ServiceFactory) -> Service:
    # No metrics server: its fixed default port may be taken by another test's projector.
    running = make_service(METRICS_PORT="0")
    running.start("projector")
    running.start("consumer", "consumer-0")
    return running


@pytest.fixture(scope="module")
def api(workers: Service):
    env = workers.env
    settings = ApiSettings(
        redis_url=env["REDIS_URL"],
        database_url=env["DATABASE_URL"],
        stream_prefix=workers.names.prefix,
        models_dir=env["MODELS_DIR"],
    )
    app = create_app(settings)
    paths = {getattr(route, "path", None) for route in app.routes}
    if "/v1/jobs/{job_id}/events" not in paths:
        app.include_router(events.router)
    # The workers' database holds the stack's admin key, which this in-process API reads too.
    auth = {"Authorization": f"Bearer {workers.admin_key}"}
    with TestClient(app, headers=auth) as client:
        yield client


def wait_terminal(api: TestClient, job_id: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = api.get(f"/v1/jobs/{job_id}").json()
        if body["status"] in TERMINAL:
            return body
        time.sleep(0.02)
    raise TimeoutError(f"{job_id}: {api.get(f'/v1/jobs/{job_id}').json()}")


def test_the_timeline_is_complete_right_after_the_job_ends(api: TestClient):
    job_id = api.post("/v1/inference", json={"text": "win money now [[transient:1]]"}).json()[
        "job_id"
    ]
    wait_terminal(api, job_id)
    response = api.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job_id"] == job_id
    timeline = body["events"]
    types = [event["type"] for event in timeline]
    assert types == ["JobRequested", "JobStarted", "JobRetrying", "JobSucceeded"]
    requested, started, retrying, succeeded = timeline
    assert requested["consumer"] is None and requested["attempt"] is None
    assert requested["payload"]["text"] == "win money now [[transient:1]]"
    assert started["consumer"] == "consumer-0" and started["attempt"] == 1
    assert retrying["payload"]["error_type"] and retrying["attempt"] == 1
    assert succeeded["attempt"] == 2 and succeeded["payload"]["label"] in ("spam", "ham")
    times = [event["occurred_at"] for event in timeline]
    assert times == sorted(times)


def test_the_timeline_reads_the_same_once_archived(api: TestClient):
    job_id = api.post("/v1/inference", json={"text": "see you at lunch"}).json()["job_id"]
    wait_terminal(api, job_id)
    first = api.get(f"/v1/jobs/{job_id}/events").json()  # partly from the stream
    time.sleep(0.5)  # the projector (READ_BLOCK_MS 100) archives the rest with its batch
    assert api.get(f"/v1/jobs/{job_id}/events").json() == first


@pytest.mark.parametrize(
    "job_id", [new_job_id(), "not-a-uuid", "01A2222C-2F5B-772F-B08B-C988CDC0BB63"]
)
def test_unknown_jobs_are_404(api: TestClient, job_id: str):
    response = api.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
