"""GET /v1/stats: the overview the console draws (api.overview), for any client."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import overview
from api.deps import Reader, ServicesDep
from api.openapi import SERVER_ERROR, example, problem_response
from api.overview import MAX_MINUTES, Minutes, Overview
from api.responses import guarded_by, unavailable
from api.schemas import UnprocessableProblem

router = APIRouter()

READ_STATS: dict[int | str, dict[str, Any]] = {
    **guarded_by("read"),
    422: problem_response(
        f"`minutes` is not a whole number from 1 to {MAX_MINUTES}, or a parameter this route "
        "does not know.",
        example(
            422,
            "validation-error",
            "Invalid request",
            "query.minutes: Input should be greater than or equal to 1",
            errors=[
                {
                    "field": "query.minutes",
                    "message": "Input should be greater than or equal to 1",
                    "type": "greater_than_equal",
                }
            ],
        ),
        model=UnprocessableProblem,
    ),
    503: unavailable("PostgreSQL or Redis did not answer."),
    **SERVER_ERROR,
}


@router.get(
    "/v1/stats",
    response_model=Overview,
    summary="Read the overview: throughput, latency, lag",
    description="The jobs that ended in the last `minutes` by outcome, per time bucket (30 "
    "buckets) and per model, with percentiles of their time from submission to the end; the "
    "jobs queued and running now; and, for an admin's key, the log's shape per partition "
    "(stream length, the workers' group lag, pending entries and the age of the oldest, dead "
    "letters). A tenant's key sees its own jobs only, and `partitions` null; an admin's key "
    "sees every tenant's jobs. Read from PostgreSQL and Redis at each request: no Prometheus "
    "needed.",
    response_description="The overview.",
    responses=READ_STATS,
)
async def get_stats(svc: ServicesDep, principal: Reader, minutes: Minutes = 5) -> Overview:
    return await overview.read(svc, principal, minutes)
