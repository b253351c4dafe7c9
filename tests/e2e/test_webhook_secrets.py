"""The webhook secret routes through a real API: keys, scopes and tenants."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

SECRET = "/v1/webhooks/secret"
ROTATE = "/v1/webhooks/secret/rotate"


@pytest.fixture(scope="module")
def api(make_service: ServiceFactory) -> Service:
    service = make_service()
    service.start("api")
    return service


@pytest.mark.parametrize(("method", "path"), [("GET", SECRET), ("POST", ROTATE)])
def test_without_a_live_key_the_routes_are_401(api: Service, method: str, path: str):
    for key in (None, "ifk_" + "A" * 46):
        response = api.client(key).request(method, path)
        assert response.status_code == 401, response.text
        assert response.json()["type"] == "urn:inferflow:problem:unauthenticated"


@pytest.mark.parametrize(("method", "path"), [("GET", SECRET), ("POST", ROTATE)])
def test_a_key_without_the_submit_scope_is_403(api: Service, method: str, path: str):
    response = api.client_of("acme", "read", "cancel").request(method, path)
    assert response.status_code == 403, response.text
    assert response.json()["scope"] == "submit"


def test_each_tenant_sees_and_rotates_its_own_secret_only(api: Service):
    acme, other = api.client_of("acme-2", "submit"), api.client_of("globex", "submit")
    acme_again = api.client_of("acme-2", "submit")
    first = acme.get(SECRET).json()
    assert first["secret"].startswith("whsec_") and first["previous_secret"] is None
    assert acme_again.get(SECRET).json()["secret"] == first["secret"]  # the tenant's, not the key's
    theirs = other.get(SECRET).json()["secret"]
    assert theirs != first["secret"]

    rotated = acme.post(ROTATE)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["secret"] not in (first["secret"], theirs)
    assert body["previous_secret"] == first["secret"]
    assert body["previous_valid_until"] and body["rotated_at"]
    assert acme.get(SECRET).json() == body
    assert other.get(SECRET).json()["secret"] == theirs  # untouched by another's rotation


def test_an_admin_key_reads_its_own_tenants_secret(api: Service):
    mine = api.http.get(SECRET).json()["secret"]
    assert mine != api.client_of("acme-3", "submit").get(SECRET).json()["secret"]
    assert api.http.get(SECRET).json()["secret"] == mine
