"""Fixtures of the projector, archive and rebuild tests."""

from __future__ import annotations

import pytest

from projector.rebuild import Rebuild, RebuildOptions
from projector.runner import Projector
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore


@pytest.fixture
def make_projector(redis_url, database_url, names, redis_client, engine):
    def build(read_count: int = 500, **extra) -> Projector:
        settings = ProjectorSettings(
            redis_url=redis_url,
            database_url=database_url,
            stream_prefix=names.prefix,
            read_count=read_count,
            read_block_ms=10,
            **extra,
        )
        return Projector(settings, redis_client, ProjectionStore(engine, "jobs"))

    return build


@pytest.fixture
def make_rebuild(engine, redis_client, names):
    def build(batch: int = 50, **options) -> Rebuild:
        reports: list[str] = []
        rebuild = Rebuild(
            engine, redis_client, names, RebuildOptions(batch=batch, **options), reports.append
        )
        rebuild.reports = reports  # type: ignore[attr-defined]
        return rebuild

    return build
