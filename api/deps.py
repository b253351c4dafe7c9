"""What route handlers need, built once at start-up and kept on app.state."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import ApiSettings
from api.store import EventLogClient, ProjectionReader
from api.waiters import TerminalListener, Waiters
from classifier.registry import ModelRegistry
from domain.errors import UnknownModelVersionError


@dataclass
class Services:
    settings: ApiSettings
    log: EventLogClient
    projection: ProjectionReader
    models: ModelRegistry
    redis: aioredis.Redis
    engine: AsyncEngine
    waiters: Waiters
    listener: TerminalListener

    def require_model(self, version: str) -> None:
        # The registry reads manifests only, so a freshly trained model is found without restart.
        if not self.models.has(version):
            raise UnknownModelVersionError(version, self.models.versions())

    async def close(self) -> None:
        await self.listener.stop()
        await self.redis.aclose()
        await self.projection.close()
        await self.engine.dispose()


async def services(request: Request) -> Services:
    # async: FastAPI runs a plain def dependency in a thread pool, a hand-off per request.
    return request.app.state.services  # type: ignore[no-any-return]
