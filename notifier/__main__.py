"""`python -m notifier`: one notifier, any number of them side by side.

It reads every lane of the partitions it serves through the notifier group (a thread per
partition: notifier.reader) and sends the due webhook messages of those partitions (asyncio:
notifier.dispatcher). `python -m notifier dead-letters list` and `... redrive REF... | --all`
manage abandoned messages.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import create_async_engine

from eventlog.connection import Client, cluster_mode, connect, connect_async
from eventlog.webhooks import AsyncWebhookLog, WebhookLog
from notifier import metrics
from notifier.batches import BatchWatcher
from notifier.delivery import Sender
from notifier.dispatcher import Dispatcher
from notifier.reader import PartitionReader
from notifier.settings import NotifierSettings
from notifier.signing import Signer
from readmodel.webhooksecrets import SecretStore
from runtime import logs
from runtime.signals import stop_on_signals

log = logging.getLogger(__name__)


async def _deliver(settings: NotifierSettings, cluster: bool, stop: threading.Event) -> None:
    client = connect_async(settings.redis_url, cluster)
    engine = create_async_engine(settings.database_url, pool_pre_ping=True)
    sender = Sender(
        settings.webhook_timeout_ms / 1000,
        settings.webhook_max_response_bytes,
        settings.webhook_allow_private_networks,
        settings.webhook_concurrency,
    )
    signer = Signer(SecretStore(engine), settings.webhook_secret_cache_ms)
    webhooks = AsyncWebhookLog(client, settings.names, settings.kept_s)
    dispatcher = Dispatcher(settings, webhooks, sender, signer)
    watcher = BatchWatcher(settings, client, webhooks, engine)
    try:
        await asyncio.gather(dispatcher.run(stop), watcher.run(stop))
    finally:
        await sender.close()
        await client.aclose()
        await engine.dispose()


def serve(settings: NotifierSettings, client: Client, cluster: bool) -> None:
    stop = stop_on_signals()
    failed: list[BaseException] = []
    name = settings.notifier_name

    def read(reader: PartitionReader) -> None:
        # A partition's reader that dies stops the process (its orchestrator restarts it),
        # rather than leave it running without that partition.
        try:
            reader.run(stop)
        except BaseException as exc:
            log.exception("partition %d: reader failed; stopping", reader.partition)
            failed.append(exc)
            stop.set()

    metrics.serve(settings.metrics_port)
    readers = [PartitionReader(settings, client, p) for p in settings.served]
    threads = [
        threading.Thread(target=read, args=(r,), name=f"notifier-p{r.partition}") for r in readers
    ]
    log.info("notifier started", extra={"notifier": name, "partitions": list(settings.served)})
    for thread in threads:
        thread.start()
    try:
        asyncio.run(_deliver(settings, cluster, stop))
    except BaseException as exc:
        failed.append(exc)
        raise
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    log.info("notifier stopped", extra={"notifier": name})
    if failed:
        raise failed[0]


def list_letters(settings: NotifierSettings, client: Client) -> None:
    count = 0
    for partition in settings.served:
        for ref, fields in WebhookLog(client, settings.names, partition, settings.kept_s).letters():
            count += 1
            print(
                f"{ref}  {fields.get('webhook_id')}  job {fields.get('job_id')}  "
                f"{fields.get('url')}  attempts {fields.get('attempts')}  at "
                f"{fields.get('dead_at')}  {fields.get('reason')}"
            )
    print(f"{count} webhook dead letters in partitions {', '.join(map(str, settings.served))}")


def redrive(settings: NotifierSettings, client: Client, refs: list[str], every: bool) -> None:
    logs_by_partition = {
        p: WebhookLog(client, settings.names, p, settings.kept_s) for p in settings.served
    }
    if every:
        refs = [ref for found in logs_by_partition.values() for ref, _ in found.letters()]
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    done = 0
    for ref in refs:
        partition, _, entry_id = (ref if "/" in ref else f"0/{ref}").partition("/")
        found = logs_by_partition.get(int(partition))
        if found is not None and found.redrive(entry_id, now_ms):
            done += 1
            print(f"{ref}  due again")
    print(f"redrove {done} of {len(refs)} webhook dead letters")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m notifier")
    commands = parser.add_subparsers(dest="command")
    letters = commands.add_parser("dead-letters", help="list or redrive abandoned webhooks")
    actions = letters.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="print every webhook dead letter")
    again = actions.add_parser(
        "redrive", help="send abandoned webhooks again (same webhook-id, attempts from zero)"
    )
    again.add_argument("refs", nargs="*", help="dead letters as list prints them: P/ENTRY_ID")
    again.add_argument("--all", action="store_true", help="every webhook dead letter")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    settings = NotifierSettings()
    logs.configure(settings.log_level, "notifier", settings.log_format)
    cluster = cluster_mode(settings.redis_url, settings.redis_cluster, wait_s=30)
    client = connect(settings.redis_url, cluster)
    try:
        if args.command is None:
            serve(settings, client, cluster)
        elif args.action == "list":
            list_letters(settings, client)
        else:
            redrive(settings, client, args.refs, args.all)
    finally:
        client.close()


if __name__ == "__main__":
    main()
