"""The served OpenAPI description: equal to docs/openapi.json, and true of the running API.

The property-based test lets schemathesis generate valid and invalid requests from the served
description and checks every answer against it: no 5xx, every status, media type, header and
body documented, 405 with a correct Allow header for methods a path does not serve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from api.settings import ApiSettings
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import ROOT, Service
from tests.support import one_server

pytestmark = pytest.mark.e2e

SPEC_FILE = ROOT / "docs" / "openapi.json"
HOOKS = ROOT / "tests" / "e2e" / "schemathesis_hooks.py"
MAX_EXAMPLES = 50  # per operation and phase: about 25 s for every route (pytest's limit: 120)
SEED = 20261128

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
)


def _default_env() -> dict[str, str]:
    # The published limits must be the defaults docs/openapi.json was written with, whatever
    # the developer's shell says.
    fields = ApiSettings.model_fields
    return {
        name.upper(): str(fields[name].default) for name in ("idempotency_ttl_s", "max_body_bytes")
    }


@pytest.fixture(scope="module")
def api(make_service: ServiceFactory) -> Service:
    # No consumer runs here: schemathesis follows Location links to GET ?wait=S on queued jobs,
    # which would each be held S seconds. The served description does not depend on MAX_WAIT_S.
    service = make_service(**_default_env(), MAX_WAIT_S="0")
    service.start("api")
    return service


def test_served_description_is_the_committed_one(api: Service):
    served = api.http.get("/openapi.json").json()
    committed = json.loads(SPEC_FILE.read_text(encoding="utf-8"))
    assert served == committed, "docs/openapi.json is stale: run `make openapi`"


@one_server("the API's description holds whatever Redis's topology; checked once, on one server")
def test_api_answers_as_its_description_says(api: Service, tmp_path):
    # The CLI, not the pytest plugin: the plugin's lazy loader does not run under pytest 9.
    # A fixed seed makes a failure in CI the same failure on a laptop. Every request sends the
    # admin key, as a user's would (its output shows the header as [Filtered]).
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{api.url}/openapi.json"),
        *("--header", f"Authorization: Bearer {api.admin_key}"),
        *("--checks", ",".join(CHECKS), "--mode", "all"),
        *("--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1"),
        *("--request-timeout", "10", "--no-color", "--warnings", "off"),
    ]
    # Run elsewhere: the CLI keeps caches (.schemathesis, .hypothesis) in its working directory.
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    print(run.stdout[-2500:])  # the summary: operations, test cases, phases (pytest -rP)
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
