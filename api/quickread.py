"""The poll, answered on a short path: GET /v1/jobs/{job_id} without a query, as pure ASGI.

Pollers send most of the API's requests, and through FastAPI's routing, dependency solving and
middleware a poll cost about 0.3 ms of CPU before its job was even looked up. Here a poll by a
key that may read, of a tenant and key without request limits, is answered by api.answers as the
route would answer it: the same body, `ETag`, `If-None-Match` -> 304 and `Retry-After`.

Everything else passes on to the app, which answers it as always: a long-poll, an unknown or
another tenant's job (404), a missing or bad key (401), a key without the scope (403), a limited
tenant or key (the route charges the request and sends the RateLimit fields), a query string.
So every answer that is not a job's own comes from one place, the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from api import answers, conditional, deps, problems
from api.deps import Services
from api.errors import DependencyUnavailableError, UnauthenticatedError
from api.keys import Scope as KeyScope
from domain.ids import is_job_id

PREFIX = "/v1/jobs/"


@dataclass(frozen=True, slots=True)
class _Route:
    """What api.timing labels a request by: the route's template, as FastAPI's router sets."""

    path: str


_ROUTE = _Route("/v1/jobs/{job_id}")


class QuickReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        job_id = _polled_job(scope)
        if job_id is None or not await self._answered(job_id, scope, receive, send):
            await self.app(scope, receive, send)

    async def _answered(self, job_id: str, scope: Scope, receive: Receive, send: Send) -> bool:
        svc: Services = scope["app"].state.services
        headers = _headers(scope)
        try:
            principal = await svc.auth.principal(headers.get(b"authorization", []))
        except UnauthenticatedError:
            return False
        try:
            if not principal.allows(KeyScope.READ) or await deps.buckets(svc, principal):
                return False
            rendered = await answers.current(svc, principal, job_id)
        except DependencyUnavailableError as exc:
            scope["route"] = _ROUTE
            await problems.unavailable(exc)(scope, receive, send)
            return True
        if rendered is None:
            return False
        scope["route"] = _ROUTE
        if_none_match = ", ".join(headers.get(b"if-none-match", []))
        answer = conditional.answer(rendered, if_none_match, svc.settings.poll_retry_after_s)
        await answer(scope, receive, send)
        return True


def _polled_job(scope: Scope) -> str | None:
    """The job id of a plain poll (GET /v1/jobs/<id>, no query), else None."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]:
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    job_id = path[len(PREFIX) :]
    return job_id if is_job_id(job_id) else None


def _headers(scope: Scope) -> dict[bytes, list[str]]:
    found: dict[bytes, list[str]] = {}
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in raw:
        if name in (b"authorization", b"if-none-match"):
            found.setdefault(name, []).append(value.decode("latin-1"))
    return found
