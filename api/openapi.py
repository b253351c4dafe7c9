"""The OpenAPI description: problem-detail responses, published limits, and its JSON file."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from api.problems import MEDIA_TYPE, TYPE_PREFIX
from api.schemas import ProblemDetails
from api.settings import ApiSettings

# FastAPI adds this 422 to every operation with parameters; ours are declared explicitly.
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"
_FASTAPI_SCHEMAS = ("HTTPValidationError", "ValidationError")

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def example(status: int, slug: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """One named OpenAPI example of a problem detail, as problems.problem() writes it."""
    value = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    return {slug: {"summary": title, "value": {**value, **extra}}}


def problem_response(
    description: str,
    *examples: dict[str, Any],
    model: type[BaseModel] = ProblemDetails,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `responses=` entry whose body is a problem detail (moved to problem+json by install)."""
    named = {name: ex for one in examples for name, ex in one.items()}
    response: dict[str, Any] = {
        "model": model,
        "description": description,
        "content": {MEDIA_TYPE: {"examples": named}},
    }
    if headers:
        response["headers"] = headers
    return response


SERVER_ERROR: dict[int | str, dict[str, Any]] = {
    500: problem_response(
        "A bug: the error is logged, nothing about it is in the answer.",
        example(500, "internal-error", "Internal error", "An unexpected error occurred."),
    )
}


def description(settings: ApiSettings) -> str:
    """The API's description, with the limits this process enforces."""
    ttl = settings.idempotency_ttl_s
    return _DESCRIPTION.format(
        ttl_s=ttl, ttl_h=f"{ttl / 3600:g}", max_body_bytes=settings.max_body_bytes
    )


_DESCRIPTION = """Asynchronous text classification on an event log.

`POST /v1/inference` accepts a job (202) and appends `JobRequested` to a Redis Stream; workers
append the outcome; `GET /v1/jobs/{{job_id}}` reads the job from its PostgreSQL projection.

## Errors

Every 4xx and 5xx answer is an RFC 9457 problem detail (`application/problem+json`) with `type`
(`urn:inferflow:problem:<name>`), `title`, `status` and `detail`; validation errors add `errors`,
the path and message of each invalid field. A path that does not exist is 404; a method a path
does not serve is 405 with an `Allow` header naming the methods it does.

## Request bodies

`POST /v1/inference` takes `application/json` in UTF-8: another media type, a `charset` other than
UTF-8, or no `Content-Type` is 415. A body over {max_body_bytes} bytes is 413, refused before it is
parsed, with or without `Content-Length`. An empty body, bytes that are not UTF-8, and text that
is not JSON (or repeats a member name) are 400 `malformed-json`. JSON that is not a valid request
(a field of the wrong type, an unknown field, `text` blank or too long) is 422 `validation-error`.

## Idempotency

Send an `Idempotency-Key` header (IETF httpapi draft "The Idempotency-Key HTTP Header Field") to
make a submission safe to retry. A key is 1 to 255 printable ASCII characters; anything else,
an empty value or the header sent twice is 400. A key is remembered for {ttl_s} s ({ttl_h} h)
after its job was accepted, bound to a fingerprint of the request (the stripped text and the
model version):

- the same key with the same request replays the original 202 (same job id) with
  `Idempotent-Replayed: true`; no second job is created;
- the same key with another request is 422 `idempotency-key-reused`.

The draft's 409 for "a request with this key is still being processed" cannot occur: checking
the key and appending the job are one atomic Redis script, so no request is ever seen half
accepted. A duplicate sent concurrently with the original gets the replay.
"""


def install(app: FastAPI) -> None:
    """Serve problem responses as application/problem+json in the generated description."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            _problem_media_type(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_media_type(spec: dict[str, Any]) -> None:
    for path in spec["paths"].values():
        for operation in path.values():
            responses = operation["responses"]
            if _FASTAPI_422 in json.dumps(responses.get("422", {})):
                del responses["422"]
            for code, response in responses.items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    moved = content.pop("application/json")
                    content[MEDIA_TYPE] = {**moved, **content.get(MEDIA_TYPE, {})}
    schemas = spec.get("components", {}).get("schemas", {})
    for name in _FASTAPI_SCHEMAS:
        schemas.pop(name, None)


def render(spec: dict[str, Any]) -> str:
    """The description as committed in docs/openapi.json: sorted keys, so diffs stay readable."""
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def default_settings() -> ApiSettings:
    """Settings with every default, whatever the environment says: the committed description."""
    return ApiSettings.model_construct()


# The JSON gate's 415, the same on every route that takes a body.
UNSUPPORTED_MEDIA_TYPE: dict[int | str, dict[str, Any]] = {
    415: problem_response(
        "The body is not declared as application/json in UTF-8.",
        example(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            "Send the body as application/json (UTF-8); got text/plain.",
        ),
    ),
}
