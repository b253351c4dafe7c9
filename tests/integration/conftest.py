"""Fixtures of the consumer, projector, archive and rebuild tests."""

from __future__ import annotations

import pytest

from classifier.registry import ModelRegistry
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from consumer.worker import Worker
from projector.rebuild import Rebuild, RebuildOptions
from projector.runner import Projector
from projector.settings import ProjectorSettings
from projector.store import SMALL_BATCH, ProjectionStore


@pytest.fixture
def make_projector(redis_url, database_url, names, redis_client, engine):
    def build(
        read_count: int = 500, small_batch: int = SMALL_BATCH, partition: int = 0, **extra
    ) -> Projector:
        settings = ProjectorSettings(
            redis_url=redis_url,
            database_url=database_url,
            stream_prefix=names.prefix,
            read_count=read_count,
            read_block_ms=10,
            **extra,
        )
        store = ProjectionStore(engine, "jobs", small_batch=small_batch, partition=partition)
        return Projector(settings, redis_client, store)

    return build


@pytest.fixture
def make_rebuild(engine, redis_client, names):
    def build(batch: int = 50, partitions: int = 1, **options) -> Rebuild:
        reports: list[str] = []
        rebuild = Rebuild(
            engine,
            redis_client,
            names,
            RebuildOptions(batch=batch, **options),
            range(partitions),
            report=reports.append,
        )
        rebuild.reports = reports  # type: ignore[attr-defined]
        return rebuild

    return build


@pytest.fixture
def make_worker_and_runner(redis_url, redis_client, names, models_dir):
    """Workers on the test's stream, with quick retries and fault injection on."""
    runners: list[InferenceRunner] = []

    def build(
        name: str = "c1",
        registry: ModelRegistry | None = None,
        runner_class: type[InferenceRunner] = InferenceRunner,
        **overrides: object,
    ) -> tuple[Worker, InferenceRunner]:
        options = {
            "redis_url": redis_url,
            "stream_prefix": names.prefix,
            "models_dir": models_dir,
            "consumer_name": name,
            "read_block_ms": 10,
            "retry_initial_ms": 1,
            "retry_max_ms": 5,
            "retry_jitter_ms": 1,
            "fault_injection": True,
            **overrides,
        }
        settings = ConsumerSettings(**options)
        runner = runner_class(
            registry or ModelRegistry(settings.models_dir),
            settings.inference_timeout_ms,
            settings.fault_injection,
        )
        runners.append(runner)
        worker = Worker(settings, redis_client, runner)
        worker.ensure_group()
        return worker, runner

    yield build
    for runner in runners:
        runner.close()
