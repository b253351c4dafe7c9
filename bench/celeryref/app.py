"""The Celery reference's API: FastAPI, one uvicorn worker, a psycopg pool.

`uvicorn bench.celeryref.app:create_app --factory`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field

from bench.celeryref import settings
from bench.celeryref.worker import infer

FIELDS = "job_id, status, model_version, result_label, result_score, error, attempts"


class InferenceRequest(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


def create_app() -> FastAPI:
    pool = AsyncConnectionPool(
        settings.env(settings.DATABASE_URL), min_size=4, max_size=16, open=False
    )
    version = settings.env(settings.MODEL_VERSION)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=True)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/inference", status_code=202)
    async def submit(request: InferenceRequest) -> dict[str, str]:
        job_id = str(uuid.uuid4())
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO jobs (job_id, status, text, model_version)"
                " VALUES (%s, 'queued', %s, %s)",
                (job_id, request.text, version),
            )
        infer.apply_async((job_id,))  # one LPUSH to Redis: brief enough for the event loop
        return {"job_id": job_id, "status": "queued"}

    @app.get("/v1/jobs/{job_id}")
    async def job(job_id: uuid.UUID) -> dict[str, Any]:
        async with pool.connection() as conn:
            cursor = await conn.execute(f"SELECT {FIELDS} FROM jobs WHERE job_id = %s", (job_id,))
            row = await cursor.fetchone()
        if row is None:
            raise HTTPException(404, "job not found")
        result = dict(zip(FIELDS.split(", "), row, strict=True))
        result["job_id"] = str(result["job_id"])
        return result

    return app
