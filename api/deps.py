"""What route handlers depend on: the services built once at start-up (kept on app.state), the
request's principal (its API key's tenant and scopes, checked against the route's scope and
charged to its rate limits), and the request's Idempotency-Key."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from api import deadlines, ratelimits
from api.auth import Authenticator, Principal
from api.errors import ForbiddenError, RefusedRequestError
from api.guard import guarded_again
from api.keys import KeyStore, Scope
from api.logclient import LogClient
from api.metrics import RATE_LIMITED, TenantLabels
from api.projection import ProjectionReader
from api.settings import ApiSettings
from api.submission import KEY_HEADER, is_valid_key
from api.tenants import TenantStore
from api.waiters import TerminalListener, Waiters
from classifier.errors import UnknownModelVersionError
from classifier.registry import ModelRegistry
from eventlog.connection import AsyncClient
from eventlog.ratelimit import Bucket, RateLimiter
from readmodel.webhooksecrets import SecretStore


@dataclass
class Services:
    settings: ApiSettings
    log: LogClient
    projection: ProjectionReader
    models: ModelRegistry
    redis: AsyncClient
    engine: AsyncEngine
    waiters: Waiters
    listener: TerminalListener
    auth: Authenticator
    keys: KeyStore
    tenants: TenantStore
    limiter: RateLimiter
    tenant_label: TenantLabels
    webhook_secrets: SecretStore
    # One batch's items judged at a time (api.submission.judge).
    judging: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def timeout_s(self) -> float:
        return self.settings.dependency_timeout_ms / 1000

    def default_model(self) -> str:
        """The version of a submission that names none: the models directory's default (it
        changes without restart), else DEFAULT_MODEL_VERSION."""
        return self.models.serving.current().default_version(self.settings.default_model_version)

    def require_model(self, version: str) -> None:
        # The registry reads manifests only, so a freshly trained model is found without restart.
        if not self.models.has(version):
            raise UnknownModelVersionError(version, self.models.versions())
        self.models.serving.current().check_submission(version)

    async def close(self) -> None:
        await self.listener.stop()
        await self.log.close()
        await self.redis.aclose()
        await self.projection.close()
        await self.engine.dispose()


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain def dependency in a thread pool, a hand-off per request.
    return request.app.state.services  # type: ignore[no-any-return]


async def idempotency_key(request: Request) -> str | None:
    """The request's key, checked before the body is validated (a bad key is 400, not 422)."""
    values = request.headers.getlist(KEY_HEADER)
    if not values:
        return None
    if len(values) > 1 or not is_valid_key(values[0]):
        raise RefusedRequestError(
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters, sent once.",
        )
    return values[0]


async def cancel_after_ms(request: Request) -> int | None:
    """The request's Cancel-After as ms, checked before the body is validated (400, not 422)."""
    values = request.headers.getlist(deadlines.HEADER)
    if not values:
        return None
    try:
        if len(values) > 1:
            raise ValueError("Cancel-After was sent more than once")
        return deadlines.parse_ms(values[0])
    except ValueError as exc:
        raise RefusedRequestError(
            "invalid-cancel-after", "Invalid Cancel-After", f"Cancel-After: {exc}"
        ) from exc


ServicesDep = Annotated[Services, Depends(services)]
IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
CancelAfterMs = Annotated[int | None, Depends(cancel_after_ms)]


async def buckets(svc: Services, principal: Principal, jobs: int = 0) -> list[Bucket]:
    """The limits a request of `principal`, with `jobs` jobs, counts against: none when
    neither its tenant nor its key has one."""
    limits = await svc.tenants.limits(principal.tenant)
    return ratelimits.buckets_for(
        svc.settings.names,
        principal.tenant,
        principal.key_id or "-",
        limits.requests,
        principal.requests,
        limits.jobs,
        jobs,
    )


async def charge(svc: Services, request: Request, principal: Principal, jobs: int = 0) -> None:
    """Count the request, and `jobs` jobs, against its tenant's and key's limits, all or none
    in one step; RateLimitedError when one is spent. The decision's header fields go on the
    answer, whatever it is (api.ratelimits.RateLimitHeaders)."""
    limited = await buckets(svc, principal, jobs)
    if not limited:
        return
    # A receipt of its own: sent again after a dropped connection, the call charges once.
    receipt = svc.settings.names.rate_receipt(principal.tenant, uuid.uuid4().hex)
    decision = await guarded_again(
        "redis", svc.timeout_s, lambda: svc.limiter.acquire(limited, receipt)
    )
    ratelimits.answer_with(request.scope, decision)
    if not decision.allowed:
        RATE_LIMITED.labels(svc.tenant_label(principal.tenant)).inc()
        ratelimits.enforce(decision)


# Describes the scheme in the OpenAPI description; api.auth reads the header itself, stricter
# (a header sent twice, a key of the wrong shape).
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="ifk_...",
    description="An API key: `Authorization: Bearer ifk_...` (POST /v1/admin/keys makes them).",
)


def require(scope: Scope, charged: bool = True) -> Any:
    """A dependency: the request's principal, which must hold `scope`; the request is charged
    to its rate limits, unless the route does that itself (`charged` off: a submission, which
    knows its jobs only once its body is read)."""

    async def principal(
        request: Request, svc: ServicesDep, _documented: Annotated[Any, Depends(BEARER)]
    ) -> Principal:
        found = await svc.auth.principal(request.headers.getlist("authorization"))
        if not found.allows(scope):
            raise ForbiddenError(scope.value)
        if charged:
            await charge(svc, request, found)
        return found

    return Depends(principal)


Submitter = Annotated[Principal, require(Scope.SUBMIT, charged=False)]
# A route of the submit scope that submits nothing (the webhook secret): charged as any request.
SubmitterCharged = Annotated[Principal, require(Scope.SUBMIT)]
Reader = Annotated[Principal, require(Scope.READ)]
Canceller = Annotated[Principal, require(Scope.CANCEL)]
Admin = Annotated[Principal, require(Scope.ADMIN)]
