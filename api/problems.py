"""RFC 9457 problem details: the one place where errors become HTTP responses."""

from __future__ import annotations

import json
import logging
import re
from http.client import responses as reason_phrases
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import metrics, ratelimits
from api.errors import (
    DependencyUnavailableError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    QueueFullError,
    RateLimitedError,
    RefusedRequestError,
    UnauthenticatedError,
)
from api.webhooks import WEBHOOK_REFUSED
from classifier.errors import ModelRetiredError, UnknownModelVersionError
from domain.errors import InferFlowError
from runtime.errors import RefusedWebhookError

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:inferflow:problem:"
RETRY_AFTER_S = 1


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        # ASCII escapes: a detail quoting hostile input (a field named "\ud800") still encodes.
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body = {"type": TYPE_PREFIX + slug, "title": title, "status": status, "detail": detail}
    body.update(extensions)
    metrics.PROBLEMS.labels(slug).inc()
    return ProblemResponse(body, status_code=status, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(part) for part in err["loc"]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in exc.errors()
    ]


async def _on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _field_errors(exc)
    if any(err["type"] == "json_invalid" for err in errors):
        return problem(400, "malformed-json", "Malformed JSON", "The body is not valid JSON.")
    detail = "; ".join(f"{err['field']}: {err['message']}" for err in errors)
    return problem(422, "validation-error", "Invalid request", detail, errors=errors)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    # Starlette raises these for unknown paths (404) and methods (405, with its Allow header).
    title = reason_phrases.get(exc.status_code, "HTTP error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed(request, headers.get("Allow", ""))
    return problem(exc.status_code, f"http-{exc.status_code}", title, str(exc.detail), headers)


def _allowed(request: Request, starlettes: str) -> str:
    """Every method of the path: Starlette's Allow names only those of the route that matched
    first, and a path may have a route per method (GET and POST /v1/admin/keys)."""
    methods = {m.strip() for m in starlettes.split(",") if m.strip()}
    for template, operations in request.app.openapi()["paths"].items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            methods.update(method.upper() for method in operations)
    return ", ".join(sorted(methods))


def _challenge(exc: UnauthenticatedError) -> str:
    # RFC 6750: no error code when no credentials came at all.
    if exc.reason is None:
        return 'Bearer realm="inferflow"'
    return f'Bearer realm="inferflow", error="{exc.reason}"'


async def _on_domain(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, UnauthenticatedError):
        headers = {"WWW-Authenticate": _challenge(exc)}
        return problem(401, "unauthenticated", "Unauthenticated", exc.detail, headers=headers)
    if isinstance(exc, ForbiddenError):
        challenge = f'Bearer realm="inferflow", error="insufficient_scope", scope="{exc.scope}"'
        headers = {"WWW-Authenticate": challenge}
        return problem(403, "forbidden", "Forbidden", str(exc), headers=headers, scope=exc.scope)
    if isinstance(exc, RateLimitedError):
        # Retry-After and the RateLimit fields come from api.ratelimits.RateLimitHeaders, as on
        # every answer of a limited route.
        violated = ratelimits.violated_policies(exc.decision)
        return problem(
            429, "rate-limited", "Too many requests", exc.detail, violated_policies=violated
        )
    if isinstance(exc, QueueFullError):
        headers = {"Retry-After": str(RETRY_AFTER_S)}
        return problem(429, "queue-full", "Queue full", str(exc), headers=headers)
    if isinstance(exc, RefusedRequestError):
        return problem(exc.status, exc.slug, exc.title, exc.detail, **exc.extensions)
    if isinstance(exc, UnknownModelVersionError):
        return problem(
            422,
            "unknown-model-version",
            "Unknown model version",
            str(exc),
            available=list(exc.known),
        )
    if isinstance(exc, RefusedWebhookError):
        return problem(422, *WEBHOOK_REFUSED, str(exc))
    if isinstance(exc, ModelRetiredError):
        # 410: the version existed and is gone for new work; the replacement is what to send.
        title = "Model version retired"
        return problem(410, "model-retired", title, str(exc), replacement=exc.replacement)
    if isinstance(exc, IdempotencyKeyReusedError):
        return problem(422, "idempotency-key-reused", "Idempotency-Key reused", str(exc))
    if isinstance(exc, DependencyUnavailableError):
        return unavailable(exc)
    return await _on_unexpected(_request, exc)


def unavailable(exc: DependencyUnavailableError) -> JSONResponse:
    return problem(
        503,
        "dependency-unavailable",
        "Service unavailable",
        str(exc),
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "internal-error", "Internal error", "An unexpected error occurred.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(InferFlowError, _on_domain)
    app.add_exception_handler(Exception, _on_unexpected)
