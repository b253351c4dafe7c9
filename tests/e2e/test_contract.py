"""The HTTP contract through a real api process: idempotency, problem details, hostile input."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from api.submission import KEY_HEADER, REPLAY_HEADER
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}
MAX_BODY_BYTES = 65536
CONCURRENT = 64


@pytest.fixture(scope="module")
def api(make_service: ServiceFactory) -> Service:
    """The api alone: every rule here is decided before a worker sees the job."""
    service = make_service()
    service.start("api")
    return service


def is_problem(response: httpx.Response, status: int, slug: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["type"].startswith("urn:inferflow:problem:")
    if slug:
        assert body["type"] == f"urn:inferflow:problem:{slug}"
    return body


def post(api: Service, content: bytes, headers: dict | None = None) -> httpx.Response:
    return api.http.post(
        "/v1/inference", content=content, headers=JSON if headers is None else headers
    )


def requested_events(api: Service) -> list[dict[str, str]]:
    return [fields for _, fields in api.log() if fields["type"] == "JobRequested"]


# Idempotency-Key


def test_concurrent_requests_with_one_key_create_one_job(make_service: ServiceFactory):
    api = make_service()  # its own stream, so every JobRequested in it is from this test
    api.start("api")
    key = {KEY_HEADER: f"race-{uuid.uuid4()}"}
    auth = {"Authorization": f"Bearer {api.admin_key}"}
    start = threading.Barrier(CONCURRENT)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=api.url, timeout=30, headers=auth) as client:
            client.get("/health")  # connect first, so the barrier releases requests, not dials
            start.wait()
            return client.post("/v1/inference", json={"text": "one job only"}, headers=key)

    with ThreadPoolExecutor(CONCURRENT) as pool:
        responses = list(pool.map(send, range(CONCURRENT)))

    refused = [r.text for r in responses if r.status_code != 202]
    assert refused == [], refused
    assert len({r.json()["job_id"] for r in responses}) == 1
    replays = [r for r in responses if r.headers.get(REPLAY_HEADER) == "true"]
    assert len(replays) == CONCURRENT - 1
    assert len(requested_events(api)) == 1


def test_a_replay_is_the_original_202(api: Service):
    key = {KEY_HEADER: f"k-{uuid.uuid4()}"}
    first = api.submit("  same text  ", headers=key)
    again = api.submit("same text", headers=key)  # equal after stripping: the same request
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert first.headers["Location"] == again.headers["Location"]
    assert REPLAY_HEADER not in first.headers
    assert again.headers[REPLAY_HEADER] == "true"


def test_the_fingerprint_is_the_stripped_text_and_the_resolved_model_version(api: Service):
    key = {KEY_HEADER: f"k-{uuid.uuid4()}"}
    assert api.submit("text", headers=key).status_code == 202
    other = api.submit("text", model_version="spam-tfidf-lr-v1", headers=key)
    assert other.status_code == 202  # the default, named: the same request
    is_problem(api.submit("other text", headers=key), 422, "idempotency-key-reused")


@pytest.mark.parametrize(
    "key",
    ["", "x" * 256, "tab\tinside", "naïve"],
    ids=["empty", "too-long", "control", "non-ascii"],
)
def test_invalid_keys_are_400(api: Service, key: str):
    raw = key.encode("utf-8")  # httpx refuses non-ASCII text, not bytes
    response = post(api, b'{"text": "hi"}', headers={**JSON, KEY_HEADER: raw})
    is_problem(response, 400, "invalid-idempotency-key")


def test_keys_of_1_and_255_printable_characters_are_accepted(api: Service):
    for key in ("!", ("k " * 128)[:254] + "~"):
        assert len(key) in (1, 255)
        assert api.submit("hi", headers={KEY_HEADER: key}).status_code == 202


def test_two_keys_in_one_request_are_400(api: Service):
    headers = [("Content-Type", "application/json"), (KEY_HEADER, "a"), (KEY_HEADER, "b")]
    response = api.http.post("/v1/inference", content=b'{"text": "hi"}', headers=headers)
    is_problem(response, 400, "invalid-idempotency-key")


def test_a_bad_key_is_400_even_when_the_body_is_invalid_too(api: Service):
    response = post(api, b'{"text": 42}', headers={**JSON, KEY_HEADER: ""})
    is_problem(response, 400, "invalid-idempotency-key")


# Bodies


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"", "empty"),
        (b'{"text": ', "not valid JSON"),
        (b'{"text": "caf\xe9"}', "not valid UTF-8"),
        (b'{"text": "\xed\xa0\x80"}', "not valid UTF-8"),  # an encoded lone surrogate
        ('{"text": "hi"}'.encode("utf-16"), "not valid UTF-8"),
        (b'\xef\xbb\xbf{"text": "hi"}', "not valid JSON"),  # a byte order mark
        (b'{"text": "a", "text": "b"}', "repeated"),
        (b"[" * 20000 + b"]" * 20000, "nested too deeply"),
    ],
    ids=["empty", "truncated", "latin-1", "surrogate", "utf-16", "bom", "repeated", "deep"],
)
def test_bodies_that_are_not_utf8_json_are_400(api: Service, content: bytes, detail: str):
    assert detail in is_problem(post(api, content), 400, "malformed-json")["detail"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_bodies_not_declared_as_utf8_json_are_415(api: Service, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}  # httpx adds none itself
    is_problem(post(api, b'{"text": "hi"}', headers), 415, "unsupported-media-type")


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_with_or_without_a_utf8_charset_is_accepted(api: Service, content_type: str):
    response = post(api, b'{"text": "hi"}', headers={"Content-Type": content_type})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": None}, "body.text"),
        ({"text": 1.5}, "body.text"),
        ({"text": {"a": 1}}, "body.text"),
        ({"text": "hi", "model_version": 7}, "body.model_version"),
        ({"text": "hi", "model_version": "has space"}, "body.model_version"),
        ({"text": "hi", "model_verison": "x"}, "body.model_verison"),
        ({"text": "\u2003\u00a0"}, "body.text"),
        ({"text": "x" * 5001}, "body.text"),
        ({"text": "bad \ud800 surrogate"}, "body.text"),
        ({"text": "hi", "\udfff": 1}, "body"),  # pydantic refuses the key, not the field
        (["text"], "body"),
        ("text", "body"),
        (None, "body"),
    ],
    ids=[
        "null",
        "number",
        "object",
        "version-number",
        "version-pattern",
        "unknown-field",
        "unicode-blank",
        "too-long",
        "escaped-surrogate",
        "surrogate-field-name",
        "array",
        "string",
        "json-null",
    ],
)
def test_json_that_is_not_a_valid_request_is_422_naming_the_field(api: Service, body, field):
    problem = is_problem(post(api, json.dumps(body).encode()), 422, "validation-error")
    assert field in [error["field"] for error in problem["errors"]]


def test_a_body_at_the_size_limit_is_read_and_one_byte_more_is_413(api: Service):
    def sized(n: int) -> bytes:
        prefix, suffix = b'{"text": "x", "pad": "', b'"}'
        return prefix + b" " * (n - len(prefix) - len(suffix)) + suffix

    at_limit = post(api, sized(MAX_BODY_BYTES))
    assert at_limit.status_code == 422, at_limit.text  # parsed: "pad" is an unknown field
    is_problem(post(api, sized(MAX_BODY_BYTES + 1)), 413, "content-too-large")


def test_a_chunked_body_over_the_limit_is_413(api: Service):
    def chunks(total: int):
        yield b'{"text": "'
        for _ in range(total // 4096):
            yield b"y" * 4096
        yield b'"}'

    response = api.http.post("/v1/inference", content=chunks(MAX_BODY_BYTES * 2), headers=JSON)
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    is_problem(response, 413, "content-too-large")
    small = api.http.post(
        "/v1/inference", content=iter([b'{"text": ', b'"chunked"}']), headers=JSON
    )
    assert small.status_code == 202, small.text


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(api: Service):
    head = (
        "POST /v1/inference HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {api.admin_key}\r\n"
        f"Content-Length: {10 * MAX_BODY_BYTES}\r\n\r\n"
    )
    answer = b""
    with socket.create_connection(("127.0.0.1", api.port), timeout=5) as sock:
        sock.sendall(head.encode())  # and not one byte of the body
        while b"\r\n\r\n" not in answer:
            answer += sock.recv(65536)
    answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413 "), answer
    assert f"content-type: {PROBLEM}" in answer.lower()


# Paths and methods


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/inference", "POST"),
        ("DELETE", "/v1/inference", "POST"),
        ("PUT", "/v1/jobs/01a2222c-2f5b-772f-b08b-c988cdc0bb63", "GET"),
        ("POST", "/health", "GET"),
        ("PATCH", "/ready", "GET"),
    ],
)
def test_a_wrong_method_is_405_with_allow(api: Service, method: str, path: str, allow: str):
    response = api.http.request(method, path)
    is_problem(response, 405, "http-405")
    assert response.headers["Allow"] == allow


def test_an_unknown_path_is_404_problem(api: Service):
    is_problem(api.http.get("/v2/nothing"), 404, "http-404")


def test_malformed_job_ids_are_404_without_a_database_read(make_service: ServiceFactory, tmp_path):
    from devstack.servers import embedded_postgres
    from readmodel.migrations import upgrade

    with embedded_postgres(tmp_path) as server:
        upgrade(server.url)
        # The key and its tenant's limits are read from PostgreSQL once, while it is up, and
        # kept AUTH_CACHE_MS (long here), as those of a client that has been using its key.
        api = make_service(
            DATABASE_URL=server.url, DEPENDENCY_TIMEOUT_MS="500", AUTH_CACHE_MS="60000"
        )
        api.start("api")
        is_problem(api.http.get(f"/v1/jobs/{uuid.uuid4()}"), 404, "http-404")
        # PostgreSQL down: a read of a job that reached it would be 503, not 404.
        server.kill()
        malformed = ("not-an-id", "0" * 36, "01A2222C-2F5B-772F-B08B-C988CDC0BB63", "' OR 1=1 --")
        for job_id in malformed:
            is_problem(api.http.get(f"/v1/jobs/{job_id}"), 404, "http-404")
        unknown = api.http.get(f"/v1/jobs/{uuid.uuid4()}")
        is_problem(unknown, 503, "dependency-unavailable")
        assert unknown.headers["Retry-After"]


# The published description


def test_the_description_publishes_the_limits_and_why_there_is_no_409(api: Service):
    spec = api.http.get("/openapi.json").json()
    assert "86400 s (24 h)" in spec["info"]["description"]
    assert f"{MAX_BODY_BYTES} bytes" in spec["info"]["description"]
    assert "409" in spec["info"]["description"]
    submit = spec["paths"]["/v1/inference"]["post"]
    # 401 without a key, 403 without the submit scope, 410 for a retired model, 429 past a
    # rate limit.
    assert set(submit["responses"]) == {
        *("200", "202", "400", "401", "403", "410", "413", "415", "422", "429", "500", "503")
    }
    assert "409" not in submit["responses"]
    assert set(submit["responses"]["202"]["headers"]) == {
        "Location",
        REPLAY_HEADER,
        "Preference-Applied",
        "Retry-After",
    }
    assert [p["name"] for p in submit["parameters"]] == [KEY_HEADER, "Prefer", "Cancel-After"]
    assert "Retry-After" in submit["responses"]["503"]["headers"]
    for path in spec["paths"].values():
        for operation in path.values():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM], (status, operation)
