"""GET /health (the process is up), /ready (its dependencies answer) and /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from api import metrics
from api.deps import Services, ServicesDep
from api.errors import DependencyUnavailableError
from api.openapi import SERVER_ERROR
from api.problems import RETRY_AFTER_S, problem
from api.responses import NOT_READY
from api.schemas import HealthBody, ReadyBody
from readmodel.checkpoints import Checkpoint

router = APIRouter()


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
    """The projector's lag over every lane of every partition: the entries not projected yet
    added up, the age of the oldest of them; and each lane's checkpoint, by partition."""
    if "down" in (checks["redis"]["status"], checks["postgres"]["status"]):
        return
    positions = await svc.projection.checkpoints(svc.settings.partitions)
    lags = {p: await svc.log.lag_behind(p, at) for p, at in positions.items()}
    every = [lag for lanes in lags.values() for lag in lanes.values()]
    seconds = max((lag.seconds for lag in every), default=0.0)
    limit = svc.settings.ready_max_projector_lag_s
    behind = limit > 0 and seconds > limit
    checks["projector"] = {
        "status": "behind" if behind else "ok",
        "lag_entries": sum(lag.entries for lag in every),
        "lag_seconds": round(seconds, 3),
        "checkpoints": {
            str(p): {
                lane.name: positions[p].get(lane, Checkpoint()).last_entry_id for lane in lanes
            }
            for p, lanes in lags.items()
        },
    }


@router.get(
    "/ready",
    response_model=None,
    summary="Readiness",
    response_description="Redis and PostgreSQL answer and the projector keeps up.",
    responses={200: {"model": ReadyBody}, 503: NOT_READY, **SERVER_ERROR},
)
async def ready(svc: ServicesDep) -> JSONResponse | dict[str, Any]:
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
async def scrape(svc: ServicesDep) -> Response:
    try:
        counts = await svc.projection.status_counts()
    except DependencyUnavailableError:
        counts = {}
    body, content_type = metrics.exposition(counts)
    return Response(body, media_type=content_type)
