"""What an application's integration test against InferFlow looks like (README, Containers):
the `inferflow_compose` fixture gives a whole InferFlow in containers and an admin key of it,
the test talks HTTP with the key."""

from __future__ import annotations

import httpx
import pytest

pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]


def test_an_application_gets_its_text_classified(inferflow_compose):
    headers = inferflow_compose.headers
    with httpx.Client(base_url=inferflow_compose.url, headers=headers, timeout=40) as client:
        reply = client.post(
            "/v1/inference",
            json={"text": "WINNER! Claim your free cash prize now"},
            headers={"Prefer": "wait=30"},
        )
        assert reply.status_code == 200, reply.text
        job = reply.json()
        assert job["status"] == "succeeded"
        assert job["result"]["label"] == "spam"
        assert client.get(f"/v1/jobs/{job['job_id']}").json() == job


def test_an_application_can_have_keys_of_its_own_tenant(inferflow_compose):
    key = inferflow_compose.create_key("example-app", ("submit", "read"), name="example app")
    mine, admin = {"Authorization": f"Bearer {key}"}, inferflow_compose.headers
    with httpx.Client(base_url=inferflow_compose.url, timeout=10) as client:
        assert client.post("/v1/inference", json={"text": "hi"}).status_code == 401
        accepted = client.post("/v1/inference", json={"text": "hi"}, headers=mine)
        assert accepted.status_code == 202, accepted.text
        job_url = accepted.headers["Location"]
        assert client.get(job_url, headers=mine).status_code == 200
        # Another tenant's job is not there for this key; the admin key sees every tenant's.
        theirs = client.post("/v1/inference", json={"text": "hi"}, headers=admin)
        assert client.get(theirs.headers["Location"], headers=mine).status_code == 404
        assert client.get(job_url, headers=admin).status_code == 200
