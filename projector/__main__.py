"""`python -m projector [run|rebuild|trim|events ...]`: keep the jobs table folded from the log,
and the operator's commands on the log (see `--help`)."""

from __future__ import annotations

import logging
import sys
from argparse import Namespace
from typing import cast

import redis
from sqlalchemy import Engine, create_engine

from eventlog import upgrade
from eventlog.connection import Client, cluster_mode, connect
from projector import inspection, metrics, retention
from projector.cli import parser
from projector.fleet import Fleet
from projector.rebuild import Rebuild, RebuildOptions
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore
from readmodel import checkpoints
from runtime import logs, spans
from runtime.signals import stop_on_signals


def _run(settings: ProjectorSettings, client: Client, engine: Engine) -> None:
    stop = stop_on_signals()
    spans.configure_tracing("inferflow-projector")
    fleet = Fleet(settings, client, engine, settings.served)
    metrics.serve(settings.metrics_port, client, settings.names, fleet.partitions)
    logging.getLogger(__name__).info(
        "projector %s started for partitions %s", settings.projection_name, fleet.partitions
    )
    fleet.run(stop)


def _known_partitions(settings: ProjectorSettings, engine: Engine) -> list[int]:
    """The configured partitions, and any that a live checkpoint shows were projected before
    (PARTITIONS lowered): a rebuild must not leave their jobs out."""
    with engine.connect() as conn:
        projected = {
            row[0] for row in conn.execute(checkpoints.query_all(settings.projection_name))
        }
    return sorted(projected | set(range(settings.partitions)))


def _command(
    args: Namespace, settings: ProjectorSettings, cluster: bool, client: Client, engine: Engine
) -> int:
    names = settings.names
    if args.command == "rebuild":
        options = RebuildOptions(settings.projection_name, batch=args.batch, fresh=args.fresh)
        Rebuild(engine, client, names, options, _known_partitions(settings, engine)).run()
    elif args.command == "trim":
        for partition in settings.served:
            live = ProjectionStore(engine, settings.projection_name, partition=partition)
            removed = retention.trim_lanes(client, names, live, args.keep_seconds)
            for lane, count in removed.items():
                print(f"trimmed {count} entries from {names.lane(partition, lane)}")
            if not removed:
                print(f"trimmed nothing from partition {partition}")
    elif args.command == "upgrade-log":
        if cluster:
            print("nothing to upgrade: a Redis Cluster never held the unpartitioned log")
            return 0
        done = upgrade.upgrade(cast(redis.Redis, client), names)
        print(
            f"renamed {done.streams} streams, {done.job_keys} job keys and "
            f"{done.idempotency_keys} Idempotency-Key records to partition 0"
        )
    elif args.events_command == "tail":
        inspection.tail(client, names, settings.served, stop_on_signals(), print)
    elif args.events_command == "show":
        url = settings.redis_url
        if not inspection.show(url, cluster, settings.database_url, names, args.job_id, print):
            print(f"no events for job {args.job_id}", file=sys.stderr)
            return 1
    else:
        inspection.stats(client, engine, names, settings.served, print)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = ProjectorSettings()
    logs.configure(settings.log_level, "projector")
    cluster = cluster_mode(settings.redis_url, settings.redis_cluster, wait_s=30)
    client = connect(settings.redis_url, cluster)
    # No pre-ping: a round trip per batch. A connection lost mid-batch fails the batch, which
    # the runner retries (the pool drops the broken connection). One connection per partition
    # thread at a time (two threads per partition, projector.fleet), and some to spare.
    pool_size = max(5, 2 * len(settings.served) + 2)
    engine = create_engine(settings.database_url, pool_size=pool_size)
    try:
        if args.command in (None, "run"):
            _run(settings, client, engine)
            return 0
        return _command(args, settings, cluster, client, engine)
    finally:
        client.close()
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
