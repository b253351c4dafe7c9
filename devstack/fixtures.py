"""pytest fixtures for an application's integration tests against a whole InferFlow in
containers. In the application's conftest.py:

    pytest_plugins = ["devstack.fixtures"]

    def test_classifies(inferflow_compose):
        reply = httpx.post(f"{inferflow_compose.url}/v1/inference",
                           json={"text": "win a free prize"},
                           headers={**inferflow_compose.headers, "Prefer": "wait=30"})
        assert reply.json()["result"]["label"] == "spam"

`inferflow_compose.headers` sends an admin key of the stack's default tenant
(`inferflow_compose.api_key`); `inferflow_compose.create_key(tenant, scopes)` makes others.

The stack is built from this checkout on the official images (`docker compose up --build`);
with INFERFLOW_STANDINS=1 it runs the local stand-ins instead (devstack.images: built once, for
machines without an image registry). Extra settings for compose.yaml (FAULT_INJECTION,
CONSUMERS, ...) come from the `inferflow_compose_env` fixture, which an application may
override. The tests are skipped when no Docker engine answers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack import images
from devstack.compose import ComposeStack, running_compose
from devstack.servers import docker_available


@pytest.fixture(scope="session")
def inferflow_compose_env() -> dict[str, str]:
    return {}


@pytest.fixture(scope="session")
def inferflow_compose(inferflow_compose_env: dict[str, str]) -> Iterator[ComposeStack]:
    """compose.yaml up for the whole session: the API at `.url`, an admin key of it at
    `.api_key` (`.headers` sends it), torn down (volumes too) at the end."""
    if not docker_available():
        pytest.skip("no Docker engine answers")
    if os.environ.get("INFERFLOW_STANDINS") == "1":
        standins = images.ensure_all()
        with running_compose(images=standins, env=inferflow_compose_env) as stack:
            yield stack
    else:
        with running_compose(env=inferflow_compose_env, build=True) as stack:
            yield stack
