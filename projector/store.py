"""Applying a batch of stream entries to the projection in one transaction.

The checkpoint row is locked first and must still hold the position this batch starts from: two
projectors never apply the same events, and a crash anywhere leaves rows and checkpoint agreeing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import OperationalError

from domain.errors import InferFlowError
from domain.events import Event, decode
from domain.ids import is_job_id
from domain.job import JobState, evolve
from infra.eventlog import Entry
from infra.schema import jobs, projector_checkpoints
from projector import archive, statements
from projector.rows import to_row, to_state

log = logging.getLogger(__name__)

START = "0-0"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    last_entry_id: str = START
    entries_read: int = 0


class CheckpointMovedError(InferFlowError):
    """Another projector applied events since this one read its checkpoint."""

    transient = True


def decode_entries(entries: Sequence[Entry]) -> list[tuple[str, Event]]:
    """The entries that hold valid events; anything else is logged and passed over."""
    events = []
    for entry_id, fields in entries:
        try:
            event = decode(fields)
        except InferFlowError as exc:
            log.error("skipping entry %s: %s", entry_id, exc)
            continue
        if not is_job_id(event.job_id):
            log.error("skipping entry %s: job id %r is not a UUID", entry_id, event.job_id)
            continue
        events.append((entry_id, event))
    return events


# Batches of up to this many entries write with INSERTs of JSON documents, in the pipeline that
# also commits; larger ones by COPY through the stages. Measured per batch against a local
# server, JSON against COPY: 1 entry 0.69 against 1.08 ms, 32 entries 1.5 against 2.0 ms, 128
# entries 5.4 against 7.3 ms, 512 entries 21.0 against 20.6 ms, 2,000 entries 82 against 72 ms.
# Up to here, then, JSON wins, and the live projector's small reads all go that way; catching
# up and rebuilds, 2,000 entries a batch, take COPY.
SMALL_BATCH = 512


class ProjectionStore:
    """One projection: a jobs table and its checkpoint, by name, so that a rebuild can fold the
    same log into a shadow table beside the live one."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        table: Table = jobs,
        archives: bool = True,
        small_batch: int = SMALL_BATCH,
    ) -> None:
        self._engine = engine
        self._name = name
        self._table = table
        self._archives = archives
        self._small_batch = small_batch
        self._select_many = statements.select_by_keys(table, "job_id")
        self._select_one = statements.select_by_key(table, "job_id")
        self._create_stage = statements.create_stage(table)
        self._upsert_staged = statements.upsert_from_stage(table, "job_id")
        self._upsert_json = statements.insert_json(table, statements.replace_on(table, "job_id"))

    @property
    def name(self) -> str:
        return self._name

    def checkpoint(self) -> Checkpoint:
        with self._engine.connect() as conn:
            return self.read_checkpoint(conn, lock=False)

    def flushed_checkpoint(self) -> Checkpoint:
        """The checkpoint, once it and everything committed before it is on disk: the live
        batches commit asynchronously (`statements.ASYNC_COMMIT`), and what the trim deletes
        from the log must survive a database crash in the archive."""
        with self._engine.begin() as conn:
            conn.exec_driver_sql(statements.SYNC_COMMIT)
            row = conn.exec_driver_sql(statements.FLUSH_CHECKPOINT, (self._name,)).first()
        return Checkpoint() if row is None else Checkpoint(row[0], row[1])

    def read_checkpoint(self, conn: Connection, lock: bool) -> Checkpoint:
        query = select(projector_checkpoints).where(projector_checkpoints.c.name == self._name)
        row = conn.execute(query.with_for_update() if lock else query).mappings().first()
        if row is None:
            return Checkpoint()
        return Checkpoint(row["last_entry_id"], row["entries_read"])

    def apply(
        self,
        expected: Checkpoint,
        entries: Sequence[Entry],
        events: list[tuple[str, Event]] | None = None,
    ) -> Checkpoint:
        """Fold `entries` (read after `expected`) into the rows, in a transaction of its own;
        returns the new checkpoint. `events` are the entries decoded, when the caller has done
        it already.

        A small batch takes two round trips: BEGIN, advancing the checkpoint (which locks it)
        and reading the jobs the batch touches in one pipeline; the rows, the archive and the
        COMMIT in another."""
        return self.apply_returning_rows(expected, entries, events)[0]

    def apply_returning_rows(
        self,
        expected: Checkpoint,
        entries: Sequence[Entry],
        events: list[tuple[str, Event]] | None = None,
    ) -> tuple[Checkpoint, list[dict[str, Any]]]:
        """`apply`, also returning the rows the batch changed, as committed."""
        if not entries:
            return expected, []
        try:
            with (
                self._engine.connect() as conn,
                statements.own_transaction(statements.driver_connection(conn)) as raw,
            ):
                return self._apply(raw, expected, entries, self._archives, events, own=True)
        except psycopg.OperationalError as exc:
            # As SQLAlchemy would have raised it: the error the runner waits out and retries.
            raise OperationalError(None, None, exc) from exc

    def apply_in(
        self,
        conn: Connection,
        expected: Checkpoint,
        entries: Sequence[Entry],
        archives: bool,
        events: list[tuple[str, Event]] | None = None,
    ) -> Checkpoint:
        """`apply` inside the caller's transaction (a rebuild applies several batches in one);
        the archive is written when `archives`."""
        if not entries:
            return expected
        raw = statements.driver_connection(conn)
        return self._apply(raw, expected, entries, archives, events, own=False)[0]

    def _apply(
        self,
        raw: psycopg.Connection[Any],
        expected: Checkpoint,
        entries: Sequence[Entry],
        archives: bool,
        events: list[tuple[str, Event]] | None,
        own: bool,
    ) -> tuple[Checkpoint, list[dict[str, Any]]]:
        """The fold runs in Python between two pipelines. `own`: the transaction is this
        batch's, in autocommit mode (`statements.own_transaction`): its BEGIN goes in the first
        pipeline and its COMMIT in the last."""
        after = Checkpoint(entries[-1][0], expected.entries_read + len(entries))
        events = decode_entries(entries) if events is None else events
        small = len(entries) <= self._small_batch
        setup = [statements.begin(raw), statements.ASYNC_COMMIT] if own else []
        if not small:  # the stages (temporary tables live as long as the connection)
            setup.append(self._create_stage)
            if archives:
                setup.append(archive.CREATE_STAGE)
        found = self._claim(raw, expected, after, events, setup)
        changed = self._fold({str(row["job_id"]): to_state(row) for row in found}, events)
        rows = [to_row(state, entry_id) for state, entry_id in changed.values()]
        archived = entries if archives else ()
        if small:
            self._write_documents(raw, rows, archived, own)
        else:
            self._write_staged(raw, rows, archived, own)
        return after, rows

    def _claim(
        self,
        raw: psycopg.Connection[Any],
        expected: Checkpoint,
        after: Checkpoint,
        events: list[tuple[str, Event]],
        setup: list[str],
    ) -> list[dict[str, Any]]:
        """One round trip: the `setup` statements, then move the checkpoint and read the rows
        `events` touch. The results are read once the pipeline is closed: its Sync is the one
        wait."""
        ids = sorted({event.job_id for _, event in events})
        with (
            raw.cursor() as prepare,
            raw.cursor() as advance,
            raw.cursor(row_factory=dict_row) as load,
        ):
            with raw.pipeline():
                for statement in setup:
                    prepare.execute(statement)
                self._advance_checkpoint(advance, expected, after)
                self._load(load, ids)
            found: list[dict[str, Any]] = load.fetchall()
            advanced = advance.rowcount == 1
        if not advanced:
            self._create_checkpoint(raw, expected, after)
        return found

    def _load(self, cursor: Any, ids: list[str]) -> None:
        """Read the rows of `ids`. The read of many is never prepared: the generic plan that
        PostgreSQL settles on for `= ANY($1)` while the table is new and small is a sequential
        scan, kept until the table is next analyzed (0.2 s a batch at 100,000 rows). Planned
        each time, it uses the primary key once the table outgrows a few pages. The read of
        one (a live batch of one entry) stays prepared: its generic plan is the primary key's.
        """
        if len(ids) == 1:
            cursor.execute(self._select_one, (ids[0],))
        else:
            cursor.execute(self._select_many, (ids,), prepare=False)

    def _write_documents(
        self,
        raw: psycopg.Connection[Any],
        rows: list[dict[str, Any]],
        entries: Sequence[Entry],
        commit: bool,
    ) -> None:
        """One round trip: the rows and the archive by INSERTs of JSON documents, and the COMMIT
        (in a pipeline, the server skips it when a statement before it failed)."""
        if not (rows or entries or commit):
            return
        with raw.cursor() as cur, raw.pipeline():
            if rows:
                cur.execute(self._upsert_json, (statements.json_rows(rows),))
            if entries:
                archive.insert(cur, entries)
            if commit:
                cur.execute(statements.COMMIT)

    def _write_staged(
        self,
        raw: psycopg.Connection[Any],
        rows: list[dict[str, Any]],
        entries: Sequence[Entry],
        commit: bool,
    ) -> None:
        """COPY to the stages (COPY cannot go in a pipeline), then one pipeline to move the
        staged rows in and commit."""
        with raw.cursor() as cur:
            statements.copy_rows(cur, self._table, rows)
            if entries:
                archive.stage(cur, entries)
            with raw.pipeline():
                cur.execute(self._upsert_staged)
                if entries:
                    cur.execute(archive.INSERT_STAGED)
                if commit:
                    cur.execute(statements.COMMIT)

    @staticmethod
    def _fold(
        states: dict[str, JobState], events: list[tuple[str, Event]]
    ) -> dict[str, tuple[JobState, str]]:
        changed: dict[str, tuple[JobState, str]] = {}
        for entry_id, event in events:
            before = states.get(event.job_id)
            after = evolve(before, event)
            if after != before:
                states[event.job_id] = after
                changed[event.job_id] = (after, entry_id)
        return changed

    def _advance_checkpoint(self, cur: Any, expected: Checkpoint, after: Checkpoint) -> None:
        """Moves the checkpoint only from where this batch started: the row lock it takes holds
        off any other projector until commit, and one that moved it first makes this a no-op."""
        cur.execute(
            statements.ADVANCE_CHECKPOINT,
            (
                after.last_entry_id,
                after.entries_read,
                self._name,
                expected.last_entry_id,
                expected.entries_read,
            ),
        )

    def _create_checkpoint(self, raw: Any, expected: Checkpoint, after: Checkpoint) -> None:
        """The first batch of a projection writes its checkpoint row; anything else moved it."""
        if expected == Checkpoint():
            with raw.cursor() as cur:
                cur.execute(
                    statements.CREATE_CHECKPOINT,
                    (self._name, after.last_entry_id, after.entries_read),
                )
                if cur.rowcount == 1:
                    return
        raise CheckpointMovedError(f"projection {self._name} moved past {expected}")

    def write_checkpoint(self, conn: Connection, checkpoint: Checkpoint) -> None:
        self._write_checkpoint(conn, checkpoint)

    def _write_checkpoint(self, conn: Connection, checkpoint: Checkpoint) -> None:
        values = {
            "name": self._name,
            "last_entry_id": checkpoint.last_entry_id,
            "entries_read": checkpoint.entries_read,
            "updated_at": datetime.now(UTC),
        }
        stmt = insert(projector_checkpoints).values(values)
        conn.execute(stmt.on_conflict_do_update(index_elements=["name"], set_=values))
