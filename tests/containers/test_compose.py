"""compose.yaml for real: the image, every role, the migration and the servers come up healthy,
jobs go in and out through the published port with the stack's admin key, and a consumer
container killed under load loses nothing: every accepted job ends with exactly one outcome."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import httpx
import pytest

from devstack.compose import COMPOSE_FILE, ComposeStack, compose_command
from eventlog.names import Names

pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

TERMINAL = {"JobSucceeded", "JobFailed"}
JOBS = 120
STREAM = Names().events(0)  # compose.yaml runs one partition


def submit_all(client: httpx.Client, count: int, accepted: list[str]) -> None:
    for i in range(count):
        # Slow enough that each consumer holds jobs at any moment.
        reply = client.post("/v1/inference", json={"text": f"[[sleep_ms:50]] message {i}"})
        assert reply.status_code == 202, reply.text
        accepted.append(reply.json()["job_id"])


def test_every_service_is_up_and_the_image_runs_as_a_user(inferflow_compose: ComposeStack):
    services = set(inferflow_compose.run("ps", "--services", capture=True).split())
    assert {"redis", "postgres", "api", "consumer", "projector", "notifier"} <= services
    assert len(inferflow_compose.containers("consumer")) == 2
    (api,) = inferflow_compose.containers("api")
    user = subprocess.run(
        ["docker", "exec", api, "id", "-u"], capture_output=True, text=True, check=True
    )
    assert user.stdout.strip() == "10001"
    ready = httpx.get(f"{inferflow_compose.url}/ready", timeout=10)
    assert ready.status_code == 200, ready.text


def test_the_api_wants_a_key_and_the_stack_has_one(inferflow_compose: ComposeStack):
    url = f"{inferflow_compose.url}/v1/jobs/00000000-0000-0000-0000-000000000000"
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers=inferflow_compose.headers, timeout=10).status_code == 404


def redis_cli(stack: ComposeStack, *command: str) -> list[str]:
    (redis,) = stack.containers("redis")
    done = subprocess.run(
        ["docker", "exec", redis, "redis-cli", *command], capture_output=True, text=True, check=True
    )
    # Not a terminal, so one reply element per line (texts hold spaces).
    return done.stdout.splitlines()


def holders(stack: ComposeStack) -> dict[str, int]:
    """Consumer name -> entries it holds unacknowledged, from XPENDING's summary."""
    # count, smallest id, greatest id, then name/count pairs.
    pairs = redis_cli(stack, "XPENDING", STREAM, "workers")[3:]
    return {pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)}


def held_jobs(stack: ComposeStack, consumer: str) -> set[str]:
    """The job ids of the requests a consumer holds unacknowledged."""
    # Each pending entry prints as id, consumer, idle ms, deliveries.
    pending = redis_cli(stack, "XPENDING", STREAM, "workers", "-", "+", "1000", consumer)
    jobs = set()
    for entry_id in pending[::4]:
        fields = redis_cli(stack, "XRANGE", STREAM, entry_id, entry_id)[1:]
        event = dict(zip(fields[::2], fields[1::2], strict=True))
        if event["type"] == "JobRequested":  # the group also sees (and acks) outcome events
            jobs.add(event["job_id"])
    return jobs


def test_a_consumer_killed_under_load_loses_no_job(inferflow_compose: ComposeStack):
    accepted: list[str] = []
    stack = inferflow_compose
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client:
        load = threading.Thread(target=submit_all, args=(client, JOBS, accepted))
        load.start()
        # The victim is a consumer seen holding entries, so the kill strands work for certain.
        victim, stranded = "", set()
        deadline = time.monotonic() + 60
        while not victim and time.monotonic() < deadline:
            held = holders(inferflow_compose)
            for container in inferflow_compose.containers("consumer"):
                # A consumer is named after its container's host name (the id's first 12 digits).
                names = [name for name, n in held.items() if name.startswith(container[:12]) and n]
                if names:
                    victim = container
                    subprocess.run(["docker", "kill", victim], check=True, capture_output=True)
                    stranded = held_jobs(inferflow_compose, names[0])
                    break
            time.sleep(0.02)
        assert victim, "no consumer was ever seen holding an entry"
        load.join(120)
        assert len(accepted) == JOBS
        # The survivor claims what the victim held once it has been idle CLAIM_IDLE_MS (5 s).
        for job_id in accepted:
            job = client.get(f"/v1/jobs/{job_id}", params={"wait": 30}).json()
            assert job["status"] == "succeeded", job
        for job_id in accepted:
            events = client.get(f"/v1/jobs/{job_id}/events").json()["events"]
            outcomes = [e for e in events if e["type"] in TERMINAL]
            assert len(outcomes) == 1, events
        finished_by = {}
        for job_id in stranded:
            events = client.get(f"/v1/jobs/{job_id}/events").json()["events"]
            (outcome,) = [e for e in events if e["type"] in TERMINAL]
            finished_by[job_id] = outcome["consumer"]
        assert stranded, "the consumer's entries were gone before it was killed"
        assert not any(name.startswith(victim[:12]) for name in finished_by.values()), finished_by


def compose_config(env: dict[str, str]) -> dict:
    settings = {k: v for k, v in os.environ.items() if not k.endswith("_IMAGE")}
    argv = [*compose_command(), "-f", str(COMPOSE_FILE), "--profile", "monitoring"]
    done = subprocess.run(
        [*argv, "config", "--format", "json"],
        env={**settings, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)["services"]


def test_the_official_images_by_default_and_each_a_setting():
    services = compose_config({})
    assert services["redis"]["image"] == "redis:7"
    assert services["postgres"]["image"] == "postgres:16"
    assert services["api"]["image"] == "inferflow:local"
    assert services["api"]["build"]["args"]["BASE_IMAGE"] == "python:3.11-slim"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert services["grafana"]["image"].startswith("grafana/grafana:")
    chosen = {
        "INFERFLOW_IMAGE": "x/inferflow:1",
        "PYTHON_IMAGE": "x/python:1",
        "REDIS_IMAGE": "x/redis:1",
        "POSTGRES_IMAGE": "x/postgres:1",
        "PROMETHEUS_IMAGE": "x/prometheus:1",
        "GRAFANA_IMAGE": "x/grafana:1",
    }
    services = compose_config(chosen)
    roles = ("migrate", "api", "consumer", "projector", "notifier")
    assert {services[name]["image"] for name in roles} == {"x/inferflow:1"}
    assert services["api"]["build"]["args"]["BASE_IMAGE"] == "x/python:1"
    for name in ("redis", "postgres", "prometheus", "grafana"):
        assert services[name]["image"] == f"x/{name}:1"


def test_every_long_running_service_has_a_healthcheck_and_the_roles_wait_for_the_migration():
    services = compose_config({})
    for name, service in services.items():
        if name != "migrate":
            assert service.get("healthcheck", {}).get("test"), name
    assert services["migrate"]["restart"] == "no"
    for role in ("api", "consumer", "projector", "notifier"):
        assert services[role]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert "--appendonly" in services["redis"]["command"]


def test_prometheus_of_the_monitoring_profile_scrapes_every_role(inferflow_compose: ComposeStack):
    # Grafana has no stand-in here: Prometheus alone, beside the running stack.
    inferflow_compose.run("--profile", "monitoring", "up", "--detach", "--wait", "--no-build",
                          "prometheus", capture=True)  # fmt: skip
    port = inferflow_compose.env["PROMETHEUS_PUBLISH_PORT"]
    deadline = time.monotonic() + 60
    health: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        targets = httpx.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()
        health = {}
        for target in targets["data"]["activeTargets"]:
            health.setdefault(target["labels"]["job"], []).append(target["health"])
        if health.get("consumer") == ["up", "up"] and all(
            health.get(role) == ["up"] for role in ("api", "projector", "notifier")
        ):
            break
        time.sleep(0.5)
    assert health == {
        "api": ["up"],
        "projector": ["up"],
        "notifier": ["up"],
        "consumer": ["up", "up"],
    }
    rules = httpx.get(f"http://127.0.0.1:{port}/api/v1/rules", timeout=5).json()
    loaded = {rule["name"] for group in rules["data"]["groups"] for rule in group["rules"]}
    assert "InferFlowDeadLetters" in loaded
