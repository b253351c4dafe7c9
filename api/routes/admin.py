"""/v1/admin: API keys (made, listed, revoked) and each tenant's limits. Admin keys only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from api.deps import Admin, ServicesDep
from api.guard import guarded
from api.limits import JsonBodyRoute
from api.responses import ADMIN, ADMIN_KEY, ADMIN_WRITE
from api.schemas import KeyBody, KeyCreated, KeyList, KeyRequest, LimitsBody, TenantLimitsBody
from api.tenants import TenantLimits
from domain.tenants import TENANT_PATTERN

# The JSON gate runs before FastAPI parses a body (415 and 400 before 422).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=JsonBodyRoute)

Tenant = Annotated[str, Path(pattern=TENANT_PATTERN, description="A tenant's name.")]


@router.post(
    "/keys",
    status_code=201,
    response_model=KeyCreated,
    summary="Make an API key",
    description="A new key for a tenant, with its scopes. The answer holds the key itself, "
    "once: InferFlow keeps only its hash.",
    response_description="The new key.",
    responses=ADMIN_WRITE,
)
async def create_key(body: KeyRequest, svc: ServicesDep, _admin: Admin) -> KeyCreated:
    async with guarded("postgres", svc.timeout_s):
        record, key = await svc.keys.create(
            body.tenant, body.scopes, body.name, body.requests_per_s, body.requests_burst
        )
    return KeyCreated(**KeyBody.of(record).model_dump(), key=key)


@router.get(
    "/keys",
    response_model=KeyList,
    summary="List API keys",
    description="Every key (revoked ones too, with the time they stopped working), oldest "
    "first; never the keys themselves.",
    response_description="The keys.",
    responses=ADMIN,
)
async def list_keys(
    svc: ServicesDep,
    _admin: Admin,
    tenant: Annotated[str | None, Query(pattern=TENANT_PATTERN)] = None,
) -> KeyList:
    async with guarded("postgres", svc.timeout_s):
        keys = await svc.keys.listed(tenant)
    return KeyList(keys=[KeyBody.of(key) for key in keys])


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    description="The key stops working on every API process within AUTH_CACHE_MS (default "
    "2 s). Revoking a revoked key again is harmless.",
    response_description="Revoked.",
    responses=ADMIN_KEY,
)
async def revoke_key(key_id: str, svc: ServicesDep, _admin: Admin) -> Response:
    async with guarded("postgres", svc.timeout_s):
        revoked = await svc.keys.revoke(key_id)
    if revoked is None:
        raise HTTPException(404, f"no key {key_id}")
    svc.auth.forget()
    return Response(status_code=204)


@router.get(
    "/tenants/{tenant}/limits",
    response_model=TenantLimitsBody,
    summary="Read a tenant's limits",
    response_description="The tenant's own limits and those in force.",
    responses=ADMIN,
)
async def get_limits(tenant: Tenant, svc: ServicesDep, _admin: Admin) -> TenantLimitsBody:
    async with guarded("postgres", svc.timeout_s):
        own = await svc.tenants.own(tenant)
    return _limits_body(tenant, own, svc.tenants.effective(own))


@router.put(
    "/tenants/{tenant}/limits",
    response_model=TenantLimitsBody,
    summary="Set a tenant's limits",
    description="Replaces the tenant's own limits: a field left out or null goes back to the "
    "server's default. Every API process applies them within AUTH_CACHE_MS.",
    response_description="The tenant's own limits and those in force.",
    responses=ADMIN_WRITE,
)
async def put_limits(
    tenant: Tenant, body: LimitsBody, svc: ServicesDep, _admin: Admin
) -> TenantLimitsBody:
    async with guarded("postgres", svc.timeout_s):
        own = await svc.tenants.set_own(tenant, body.model_dump())
    return _limits_body(tenant, own, svc.tenants.effective(own))


def _limits_body(tenant: str, own: dict[str, object], effective: TenantLimits) -> TenantLimitsBody:
    requests, jobs = effective.requests, effective.jobs
    return TenantLimitsBody(
        tenant=tenant,
        own=LimitsBody.model_validate(own),
        effective=LimitsBody(
            requests_per_s=requests.per_s if requests else None,
            requests_burst=requests.burst if requests else None,
            jobs_per_s=jobs.per_s if jobs else None,
            jobs_burst=jobs.burst if jobs else None,
            max_queued=effective.max_queued or None,
        ),
    )
