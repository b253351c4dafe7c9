"""The FastAPI application, built from settings at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from api import openapi, problems
from api.deps import Services
from api.limits import BodySizeLimit
from api.routes import batch, events, health, inference, jobs
from api.settings import ApiSettings
from api.store import EventLogClient, ProjectionReader, connection_pool
from api.timing import RequestTiming
from api.waiters import TerminalListener, Waiters
from classifier.registry import ModelRegistry
from infra import logs, spans


def _build_services(settings: ApiSettings) -> Services:
    timeout_s = settings.dependency_timeout_ms / 1000
    client = aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
    )
    engine = create_async_engine(
        settings.database_url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, round(timeout_s))},
    )
    waiters = Waiters()
    channel = settings.names.terminal
    return Services(
        settings=settings,
        log=EventLogClient(client, settings.names, timeout_s),
        projection=ProjectionReader(
            engine, timeout_s, connection_pool(settings.database_url, settings.db_pool_max_size)
        ),
        models=ModelRegistry(settings.models_dir),
        redis=client,
        engine=engine,
        waiters=waiters,
        listener=TerminalListener(settings.redis_url, channel, waiters, timeout_s),
    )


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    logs.configure(settings.log_level, "api", settings.log_format)
    spans.configure_tracing("inferflow-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = _build_services(settings)
        app.state.services = svc
        # Not awaited: the API serves while Redis is down, long-polls then run to their timeout.
        svc.listener.start()
        await svc.projection.open()
        yield
        await svc.close()

    app = FastAPI(
        title="InferFlow",
        version="0.1.0",
        description=openapi.description(settings),
        lifespan=lifespan,
    )
    problems.install(app)
    openapi.install(app)
    # Added before the timing middleware so that it runs inside it: 413s are timed too.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestTiming)
    for router in (inference.router, batch.router, jobs.router, events.router, health.router):
        app.include_router(router)
    return app
