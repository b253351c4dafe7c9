"""`python -m projector rebuild`: replay the whole log into a shadow table, swap it in live.

1. Fold the log (the archive, then the stream) into `jobs_rebuild` under its own checkpoint
   `jobs-rebuild`, in batches, never past the live projector's checkpoint. A crash loses
   nothing: the next run resumes from that checkpoint.
2. Once within `swap_within` entries of the live checkpoint, lock the live checkpoint row (the
   live projector locks it for every batch, so it pauses), apply the last entries, swap the
   tables by renames and drop the rebuild checkpoint, all in one transaction.

The live projector then goes on from its own checkpoint, which the rebuilt rows now match; the
API reads `jobs` by name and never sees a gap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from sqlalchemy import Connection, Engine, delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError

from infra.names import Names
from infra.schema import projector_checkpoints
from projector import shadow
from projector.archive import position
from projector.progress import Progress
from projector.source import LogSource
from projector.store import START, Checkpoint, ProjectionStore

log = logging.getLogger(__name__)

REBUILD_NAME = "jobs-rebuild"


@dataclass(frozen=True, slots=True)
class RebuildOptions:
    live_name: str = "jobs"
    batch: int = 2000
    swap_within: int = 2000
    lock_timeout_ms: int = 5000
    fresh: bool = False


class _TooFarBehind(Exception):
    """The live projector ran ahead while the swap waited for it; catch up again first."""


class Rebuild:
    def __init__(
        self,
        engine: Engine,
        client: redis.Redis,
        names: Names,
        options: RebuildOptions,
        report: Callable[[str], None] = print,
    ) -> None:
        self._engine = engine
        self._options = options
        self._source = LogSource(client, engine, names.events)
        self._live = ProjectionStore(engine, options.live_name)
        self._store = ProjectionStore(engine, REBUILD_NAME, shadow.jobs_rebuild)
        self._progress = Progress(report)
        self._report = report
        self._base = 0

    def run(self) -> Checkpoint:
        """Rebuild and swap; returns the position the new `jobs` table holds."""
        checkpoint = self._prepare()
        self._base = checkpoint.entries_read
        while True:
            checkpoint = self._catch_up(checkpoint, self._live.checkpoint())
            try:
                done = self._swap(checkpoint)
            except _TooFarBehind:
                continue
            except OperationalError as exc:  # lock_timeout: readers held `jobs`; try again
                log.warning("swap did not get its locks (%s); retrying", exc.orig)
                continue
            self._report(self._progress.line(self._progress.done) + " (swapped in)")
            return done

    def _prepare(self) -> Checkpoint:
        """The shadow table and its checkpoint, both new or both resumed."""
        with self._engine.begin() as conn:
            resumable = shadow.exists(conn, shadow.SHADOW)
            checkpoint = self._store.read_checkpoint(conn, lock=True)
            has_checkpoint = self._has_checkpoint(conn)
            if self._options.fresh or not (resumable and has_checkpoint):
                shadow.create(conn)
                checkpoint = Checkpoint()
                self._store.write_checkpoint(conn, checkpoint)
            self._ensure_live_checkpoint(conn)
        if checkpoint.last_entry_id != START:
            self._report(f"rebuild: resuming after {checkpoint.entries_read} events")
        return checkpoint

    def _has_checkpoint(self, conn: Connection) -> bool:
        table = projector_checkpoints
        query = table.select().where(table.c.name == REBUILD_NAME)
        return conn.execute(query).first() is not None

    def _ensure_live_checkpoint(self, conn: Connection) -> None:
        # The swap locks this row; it must exist for the lock to hold off a live projector.
        values = {"name": self._options.live_name, "last_entry_id": START, "entries_read": 0}
        stmt = insert(projector_checkpoints).values(**values, updated_at=_now())
        conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))

    def _catch_up(self, checkpoint: Checkpoint, live: Checkpoint) -> Checkpoint:
        """Apply batches up to the live checkpoint, each in its own transaction."""
        while position(checkpoint.last_entry_id) < position(live.last_entry_id):
            with self._engine.begin() as conn:
                after = self._apply_batch(conn, checkpoint, live.last_entry_id)
            if after == checkpoint:
                break  # the log lost these entries (trimmed before the archive existed)
            done = after.entries_read - checkpoint.entries_read
            self._progress.advance(done, live.entries_read - self._base)
            checkpoint = after
        return checkpoint

    def _apply_batch(self, conn: Connection, checkpoint: Checkpoint, until: str) -> Checkpoint:
        entries, archived = self._source.batch(checkpoint.last_entry_id, until, self._options.batch)
        # Entries read from the stream are archived too: this fills the archive in for logs
        # that were projected before it existed.
        return self._store.apply_in(conn, checkpoint, entries, archives=not archived)

    def _swap(self, checkpoint: Checkpoint) -> Checkpoint:
        with self._engine.begin() as conn:
            live = self._live.read_checkpoint(conn, lock=True)
            checkpoint = self._final_batches(conn, checkpoint, live)
            shadow.swap(conn, self._options.lock_timeout_ms)
            conn.execute(
                delete(projector_checkpoints).where(projector_checkpoints.c.name == REBUILD_NAME)
            )
        log.info("rebuild swapped in at %s", checkpoint.last_entry_id)
        return checkpoint

    def _final_batches(
        self, conn: Connection, checkpoint: Checkpoint, live: Checkpoint
    ) -> Checkpoint:
        """The entries the live projector applied since the last catch-up, under its lock."""
        budget = self._options.swap_within
        while position(checkpoint.last_entry_id) < position(live.last_entry_id):
            after = self._apply_batch(conn, checkpoint, live.last_entry_id)
            if after == checkpoint:
                break
            budget -= after.entries_read - checkpoint.entries_read
            if budget < 0:
                raise _TooFarBehind
            checkpoint = after
        return checkpoint


def _now() -> datetime:
    return datetime.now(UTC)
