"""`python -m consumer`: one named consumer in the workers group.

`python -m consumer dead-letters list` and `... redrive ID... | --all` manage dead letters.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from classifier.registry import ModelRegistry
from consumer import metrics
from consumer.deadlines import DeadlineSweeper
from consumer.inference import InferenceRunner
from consumer.settings import ConsumerSettings
from consumer.worker import Worker
from eventlog import deadletters
from eventlog.connection import Client, cluster_mode, connect
from runtime import logs, spans
from runtime.signals import stop_on_signals


def serve(settings: ConsumerSettings, client: Client) -> None:
    stop = stop_on_signals()
    spans.configure_tracing("inferflow-consumer")
    registry = ModelRegistry(settings.models_dir)
    default = registry.serving.current().default_version(settings.default_model_version)
    if registry.has(default):
        registry.load(default)  # the first job should not pay for loading
    # A runner (its inference thread) per partition: a timed-out prediction in one partition
    # then never cancels another's.
    runners = [
        InferenceRunner(registry, settings.inference_timeout_ms, settings.fault_injection)
        for _ in settings.served
    ]
    workers = [
        Worker(settings, client, runner, partition=p)
        for p, runner in zip(settings.served, runners, strict=True)
    ]
    metrics.serve(settings.metrics_port)
    name = settings.consumer_name
    log = logging.getLogger(__name__)
    log.info("consumer started", extra={"consumer": name, "partitions": list(settings.served)})
    failed: list[BaseException] = []

    def work(worker: Worker) -> None:
        # A partition's worker that dies stops the process (whose orchestrator restarts it),
        # rather than leave it running without that partition.
        try:
            worker.run(stop)
        except BaseException as exc:
            log.exception("partition %d: worker failed; stopping", worker.partition)
            failed.append(exc)
            stop.set()

    sweeper = DeadlineSweeper(settings, client)

    def sweep() -> None:
        try:
            sweeper.run(stop)
        except BaseException as exc:
            log.exception("deadline sweeper failed; stopping")
            failed.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=work, args=(w,), name=f"consumer-p{w.partition}") for w in workers
    ]
    threads.append(threading.Thread(target=sweep, name="deadlines"))
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop.set()
        for runner in runners:
            runner.close()
    log.info("consumer stopped", extra={"consumer": name})
    if failed:
        raise failed[0]


def list_letters(settings: ConsumerSettings, client: Client) -> None:
    served = settings.served
    letters = deadletters.list_letters(client, settings.names, served)
    for letter in letters:
        print(
            f"{letter.ref}  job {letter.job_id}  deliveries {letter.deliveries}  "
            f"at {letter.dead_at}  lane {letter.lane.name}  {letter.reason}"
        )
    print(f"{len(letters)} dead letters in partitions {', '.join(map(str, served))}")


def redrive(settings: ConsumerSettings, client: Client, ids: list[str], every: bool) -> None:
    served = settings.served
    if every:
        ids = [letter.ref for letter in deadletters.list_letters(client, settings.names, served)]
    done = deadletters.redrive(client, settings.names, served, ids, settings.job_index_ttl_s)
    for letter, new_job in done:
        print(f"{letter.ref}  job {letter.job_id} -> new job {new_job}")
    print(f"redrove {len(done)} of {len(ids)} dead letters")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m consumer")
    commands = parser.add_subparsers(dest="command")
    letters = commands.add_parser("dead-letters", help="list or redrive dead letters")
    actions = letters.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="print every dead letter")
    again = actions.add_parser(
        "redrive", help="submit dead letters again as new jobs, each in the lane it came from"
    )
    again.add_argument(
        "ids", nargs="*", help="dead letters as list prints them: PARTITION/ENTRY_ID"
    )
    again.add_argument("--all", action="store_true", help="every dead letter")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    settings = ConsumerSettings()
    logs.configure(settings.log_level, "consumer", settings.log_format)
    cluster = cluster_mode(settings.redis_url, settings.redis_cluster, wait_s=30)
    client = connect(settings.redis_url, cluster)
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
