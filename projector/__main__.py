"""`python -m projector [run|rebuild|trim|events ...]`: keep the jobs table folded from the log,
and the operator's commands on the log (see `--help`)."""

from __future__ import annotations

import logging
import sys
from argparse import Namespace

import redis
from sqlalchemy import Engine, create_engine

from infra import logs, spans
from infra.signals import stop_on_signals
from projector import inspection, retention
from projector.cli import parser
from projector.rebuild import Rebuild, RebuildOptions
from projector.runner import Projector
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore


def _run(settings: ProjectorSettings, client: redis.Redis, engine: Engine) -> None:
    stop = stop_on_signals()
    spans.configure_tracing("inferflow-projector")
    projector = Projector(settings, client, ProjectionStore(engine, settings.projection_name))
    logging.getLogger(__name__).info("projector %s started", settings.projection_name)
    projector.run(stop)


def _command(
    args: Namespace, settings: ProjectorSettings, client: redis.Redis, engine: Engine
) -> int:
    names = settings.names
    live = ProjectionStore(engine, settings.projection_name)
    if args.command == "rebuild":
        options = RebuildOptions(settings.projection_name, batch=args.batch, fresh=args.fresh)
        Rebuild(engine, client, names, options).run()
    elif args.command == "trim":
        removed = retention.trim(client, names, live, args.keep_seconds)
        print(f"trimmed {removed} entries from {names.events}")
    elif args.events_command == "tail":
        inspection.tail(client, names, stop_on_signals(), print)
    elif args.events_command == "show":
        if not inspection.show(client, engine, names, args.job_id, print):
            print(f"no events for job {args.job_id}", file=sys.stderr)
            return 1
    else:
        inspection.stats(client, engine, names, print)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = ProjectorSettings()
    logs.configure(settings.log_level, "projector")
    client = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    # No pre-ping: a round trip per batch. A connection lost mid-batch fails the batch, which
    # the runner retries (the pool drops the broken connection).
    engine = create_engine(settings.database_url)
    try:
        if args.command in (None, "run"):
            _run(settings, client, engine)
            return 0
        return _command(args, settings, client, engine)
    finally:
        client.close()
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
