"""The FastAPI application, built from settings at start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from api import openapi, problems
from api.auth import Authenticator
from api.console import web as console_web
from api.deps import Services
from api.keys import KeyStore
from api.limits import BodySizeLimit
from api.logclient import LogClient
from api.metrics import TenantLabels
from api.projection import ProjectionReader, connection_pool
from api.quickread import QuickReads
from api.ratelimits import RateLimitHeaders
from api.routes import (
    admin,
    batch,
    batches,
    cancel,
    console,
    deadletters,
    events,
    health,
    inference,
    jobs,
    models,
    stats,
    webhooks,
)
from api.settings import ApiSettings
from api.tenants import TenantStore
from api.timing import RequestTiming
from api.waiters import TerminalListener, Waiters
from classifier.registry import ModelRegistry
from eventlog.connection import cluster_mode, connect_async
from eventlog.ratelimit import RateLimiter
from eventlog.replication import ReplicaWait
from eventlog.submission import Retention
from readmodel.webhooksecrets import SecretStore
from runtime import logs, spans


def _build_services(settings: ApiSettings) -> Services:
    timeout_s = settings.dependency_timeout_ms / 1000
    cluster = cluster_mode(settings.redis_url, settings.redis_cluster, wait_s=timeout_s)
    client = connect_async(
        settings.redis_url,
        cluster,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
    )
    engine = create_async_engine(
        settings.database_url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": max(1, round(timeout_s))},
    )
    waiters = Waiters(settings.terminal_cache_entries, settings.poll_cache_ms)
    channel = settings.names.terminal
    keys = KeyStore(engine)
    return Services(
        settings=settings,
        log=LogClient(
            client,
            settings.names,
            _retention(settings),
            timeout_s,
            settings.partitions,
            ReplicaWait(settings.submit_replicas, settings.submit_replicas_timeout_ms),
        ),
        projection=ProjectionReader(
            engine, timeout_s, connection_pool(settings.database_url, settings.db_pool_max_size)
        ),
        models=ModelRegistry(settings.models_dir),
        redis=client,
        engine=engine,
        waiters=waiters,
        listener=TerminalListener(settings.redis_url, cluster, channel, waiters, timeout_s),
        auth=Authenticator(keys, settings.auth_enabled, settings.auth_cache_ms, timeout_s),
        keys=keys,
        tenants=TenantStore(engine, settings),
        limiter=RateLimiter(client),
        tenant_label=TenantLabels(settings.metrics_max_tenants),
        webhook_secrets=SecretStore(engine),
    )


def _retention(settings: ApiSettings) -> Retention:
    return Retention(
        job_index_ttl_s=settings.job_index_ttl_s, idempotency_ttl_s=settings.idempotency_ttl_s
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
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_body_bytes,
        path_limits={
            batch.PATH: settings.batch_max_body_bytes,
            batches.FILE_PATH: settings.batch_file_max_bytes,
        },
        streamed_paths=frozenset({batches.FILE_PATH}),
    )
    app.add_middleware(RateLimitHeaders)
    # Outside the limits' middleware and the router (it answers only what they add nothing to),
    # inside the timing: a poll it answers is counted as the route's.
    app.add_middleware(QuickReads)
    app.add_middleware(RequestTiming)
    routers = (
        inference,
        batch,
        batches,
        cancel,
        jobs,
        events,
        webhooks,
        models,
        stats,
        admin,
        deadletters,
        health,
        console,
    )
    for router in (module.router for module in routers):
        app.include_router(router)
    console_web.install(app)
    return app
