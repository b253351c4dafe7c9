"""GET /health (the process is up), /ready (its dependencies answer) and /metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from api import metrics
from api.deps import Services, services
from api.openapi import RETRY_AFTER, SERVER_ERROR, example, problem_response
from api.problems import RETRY_AFTER_S, problem
from api.schemas import HealthBody, NotReadyProblem, ReadyBody
from domain.errors import DependencyUnavailableError

router = APIRouter()

NOT_READY = problem_response(
    "A dependency is down, or the projector is further behind than READY_MAX_PROJECTOR_LAG_S.",
    example(
        503,
        "not-ready",
        "Not ready",
        "redis: Connection refused",
        checks={
            "redis": {"status": "down", "reason": "Connection refused"},
            "postgres": {"status": "ok"},
        },
    ),
    model=NotReadyProblem,
    headers=RETRY_AFTER,
)


@router.get(
    "/health",
    response_model=HealthBody,
    summary="Liveness",
    response_description="The process is up.",
    responses={**SERVER_ERROR},
)
async def health() -> HealthBody:
    return HealthBody()


async def _check(name: str, probe: Any, checks: dict[str, Any]) -> None:
    try:
        await probe
        checks[name] = {"status": "ok"}
    except DependencyUnavailableError as exc:
        checks[name] = {"status": "down", "reason": exc.reason}


async def _projector_check(svc: Services, checks: dict[str, Any]) -> None:
    if "down" in (checks["redis"]["status"], checks["postgres"]["status"]):
        return
    last_entry_id, entries_read = await svc.projection.checkpoint()
    lag = await svc.log.lag_behind(last_entry_id, entries_read)
    limit = svc.settings.ready_max_projector_lag_s
    behind = limit > 0 and lag.seconds > limit
    checks["projector"] = {
        "status": "behind" if behind else "ok",
        "lag_entries": lag.entries,
        "lag_seconds": round(lag.seconds, 3),
        "checkpoint": last_entry_id,
    }


@router.get(
    "/ready",
    response_model=None,
    summary="Readiness",
    response_description="Redis and PostgreSQL answer and the projector keeps up.",
    responses={200: {"model": ReadyBody}, 503: NOT_READY, **SERVER_ERROR},
)
async def ready(svc: Annotated[Services, Depends(services)]) -> JSONResponse | dict[str, Any]:
    checks: dict[str, Any] = {}
    await _check("redis", svc.log.ping(), checks)
    await _check("postgres", svc.projection.status_counts(), checks)
    await _projector_check(svc, checks)
    failing = [name for name, check in checks.items() if check["status"] != "ok"]
    if failing:
        reasons = "; ".join(f"{n}: {checks[n].get('reason', checks[n]['status'])}" for n in failing)
        return problem(
            503,
            "not-ready",
            "Not ready",
            reasons,
            checks=checks,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return {"status": "ready", "checks": checks}


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    response_description="Prometheus text exposition format.",
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **SERVER_ERROR},
)
async def scrape(svc: Annotated[Services, Depends(services)]) -> Response:
    try:
        counts = await svc.projection.status_counts()
    except DependencyUnavailableError:
        counts = {}
    body, content_type = metrics.exposition(counts)
    return Response(body, media_type=content_type)
