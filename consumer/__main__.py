"""`python -m consumer`: one named consumer in the workers group.

`python -m consumer dead-letters list` and `... redrive ID... | --all` manage dead letters.
"""

from __future__ import annotations

import argparse
import logging
import sys

import redis

from classifier.registry import ModelRegistry
from consumer import deadletters, metrics
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from consumer.worker import Worker
from infra import logs, spans
from infra.signals import stop_on_signals


def serve(settings: ConsumerSettings, client: redis.Redis) -> None:
    stop = stop_on_signals()
    spans.configure_tracing("inferflow-consumer")
    registry = ModelRegistry(settings.models_dir)
    runner = InferenceRunner(registry, settings.inference_timeout_ms, settings.fault_injection)
    worker = Worker(settings, client, runner)
    if registry.has(settings.default_model_version):
        registry.load(settings.default_model_version)  # the first job should not pay for loading
    metrics.serve(settings.metrics_port)
    logging.getLogger(__name__).info("consumer started", extra={"consumer": worker.name})
    try:
        worker.run(stop)
    finally:
        runner.close()
    logging.getLogger(__name__).info("consumer stopped", extra={"consumer": worker.name})


def list_letters(settings: ConsumerSettings, client: redis.Redis) -> None:
    letters = deadletters.list_letters(client, settings.names)
    for letter in letters:
        print(
            f"{letter.entry_id}  job {letter.job_id}  deliveries {letter.deliveries}  "
            f"at {letter.dead_at}  {letter.reason}"
        )
    print(f"{len(letters)} dead letters in {settings.names.dead_letters}")


def redrive(settings: ConsumerSettings, client: redis.Redis, ids: list[str], every: bool) -> None:
    if every:
        ids = [letter.entry_id for letter in deadletters.list_letters(client, settings.names)]
    done = deadletters.redrive(client, settings.names, ids, settings.job_index_ttl_s)
    for letter, new_job in done:
        print(f"{letter.entry_id}  job {letter.job_id} -> new job {new_job}")
    print(f"redrove {len(done)} of {len(ids)} dead letters")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m consumer")
    commands = parser.add_subparsers(dest="command")
    letters = commands.add_parser("dead-letters", help="list or redrive dead letters")
    actions = letters.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="print every dead letter")
    again = actions.add_parser("redrive", help="submit dead letters again as new jobs")
    again.add_argument("ids", nargs="*", help="dead-letter entry ids")
    again.add_argument("--all", action="store_true", help="every dead letter")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    settings = ConsumerSettings()
    logs.configure(settings.log_level, "consumer", settings.log_format)
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        if args.command is None:
            serve(settings, client)
        elif args.action == "list":
            list_letters(settings, client)
        else:
            redrive(settings, client, args.ids, args.all)
    finally:
        client.close()


if __name__ == "__main__":
    main()
