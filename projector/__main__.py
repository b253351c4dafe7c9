"""`python -m projector`: keep the jobs table folded from the event log."""

from __future__ import annotations

import logging

import redis
from sqlalchemy import create_engine

from infra import logs
from infra.signals import stop_on_signals
from projector.runner import Projector
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore


def main() -> None:
    settings = ProjectorSettings()
    logs.configure(settings.log_level, "projector")
    stop = stop_on_signals()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    engine = create_engine(settings.database_url, pool_pre_ping=True)
    projector = Projector(settings, client, ProjectionStore(engine, settings.projection_name))
    logging.getLogger(__name__).info("projector %s started", settings.projection_name)
    try:
        projector.run(stop)
    finally:
        client.close()
        engine.dispose()


if __name__ == "__main__":
    main()
