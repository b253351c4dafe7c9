"""The stack on containers (compose.yaml), from the local stand-in images, for the tests here.

The fixtures are the ones an application's tests use (devstack.fixtures); this machine has no
image registry, so they run the stand-ins, built once and kept by the engine.
"""

from __future__ import annotations

import os

import pytest

from devstack.fixtures import inferflow_compose  # noqa: F401
from devstack.ports import free_port

os.environ.setdefault("INFERFLOW_STANDINS", "1")


@pytest.fixture(scope="session")
def inferflow_compose_env() -> dict[str, str]:
    # Marked texts make consumers sleep, so that a killed consumer surely dies holding jobs.
    return {
        "FAULT_INJECTION": "true",
        "CONSUMERS": "2",
        "PROMETHEUS_PUBLISH_PORT": str(free_port()),
    }
