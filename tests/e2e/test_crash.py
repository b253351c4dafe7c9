"""SIGKILL a consumer and the projector mid-load: nothing lost, nothing doubled."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, select

from domain.events import decode, is_terminal
from domain.job import fold
from readmodel.rows import to_state
from readmodel.tables import jobs
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e


def test_killed_workers_and_projector_lose_and_double_nothing(make_service):
    service: Service = make_service(CLAIM_IDLE_MS="500", CLAIM_INTERVAL_MS="100")
    service.start_all(consumers=2)
    job_ids = []
    for i in range(60):
        response = service.submit(f"[[sleep_ms:20]] message {i} about the weekly report")
        assert response.status_code == 202
        job_ids.append(response.json()["job_id"])
        if i == 20:
            service.kill("consumer-0")
            service.kill("projector")
        if i == 40:
            service.start("projector")
            service.start("consumer", "consumer-0b")
    for job_id in job_ids:
        assert service.wait_terminal(job_id, timeout_s=60)["status"] == "succeeded"

    log = [decode(fields) for _, fields in service.log()]
    terminal = [event.job_id for event in log if is_terminal(event)]
    assert sorted(terminal) == sorted(job_ids), "each job has exactly one terminal event"

    expected = fold(log)
    engine = create_engine(service.env["DATABASE_URL"])
    deadline = time.monotonic() + 10
    while True:
        with engine.connect() as conn:
            rows = {str(r["job_id"]): to_state(r) for r in conn.execute(select(jobs)).mappings()}
        if rows == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    engine.dispose()
    assert rows == expected, "the projection equals the fold of the log"
