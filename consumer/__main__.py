"""`python -m consumer`: one named consumer in the workers group."""

from __future__ import annotations

import logging

import redis

from classifier.registry import ModelRegistry
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from consumer.worker import Worker
from infra import logs
from infra.signals import stop_on_signals


def main() -> None:
    settings = ConsumerSettings()
    logs.configure(settings.log_level, "consumer")
    stop = stop_on_signals()
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    registry = ModelRegistry(settings.models_dir)
    runner = InferenceRunner(registry, settings.inference_timeout_ms, settings.fault_injection)
    worker = Worker(settings, client, runner)
    if registry.has(settings.default_model_version):
        registry.load(settings.default_model_version)  # the first job should not pay for loading
    logging.getLogger(__name__).info("consumer %s started", worker.name)
    try:
        worker.run(stop)
    finally:
        runner.close()
        client.close()


if __name__ == "__main__":
    main()
