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

from psycopg.rows import dict_row
from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects.postgresql import insert

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


class ProjectionStore:
    """One projection: a jobs table and its checkpoint, by name, so that a rebuild can fold the
    same log into a shadow table beside the live one."""

    def __init__(
        self, engine: Engine, name: str, table: Table = jobs, archives: bool = True
    ) -> None:
        self._engine = engine
        self._name = name
        self._table = table
        self._archives = archives
        self._select = statements.select_by_keys(table, "job_id")
        self._create_stage = statements.create_stage(table)
        self._upsert = statements.upsert_from_stage(table, "job_id")

    @property
    def name(self) -> str:
        return self._name

    def checkpoint(self) -> Checkpoint:
        with self._engine.connect() as conn:
            return self.read_checkpoint(conn, lock=False)

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
        """Fold `entries` (read after `expected`) into the rows; returns the new checkpoint.
        `events` are the entries decoded, when the caller has done it already."""
        if not entries:
            return expected
        with self._engine.begin() as conn:
            return self.apply_in(conn, expected, entries, self._archives, events)

    def apply_in(
        self,
        conn: Connection,
        expected: Checkpoint,
        entries: Sequence[Entry],
        archives: bool,
        events: list[tuple[str, Event]] | None = None,
    ) -> Checkpoint:
        """`apply` inside the caller's transaction; the archive is written when `archives`.

        A handful of round trips whatever the batch size: advancing the checkpoint (which locks
        it) goes with the read of the jobs the batch touches; the fold runs in Python; rows and
        archive go by COPY (see `statements`)."""
        if not entries:
            return expected
        after = Checkpoint(entries[-1][0], expected.entries_read + len(entries))
        events = decode_entries(entries) if events is None else events
        raw = statements.driver_connection(conn)
        found = self._claim(raw, expected, after, events, archives)
        changed = self._fold({str(row["job_id"]): to_state(row) for row in found}, events)
        rows = [to_row(state, entry_id) for state, entry_id in changed.values()]
        with raw.cursor() as cur:
            statements.copy_rows(cur, self._table, rows)
            if archives:
                archive.stage(cur, entries)
            with raw.pipeline():
                cur.execute(self._upsert)
                if archives:
                    cur.execute(archive.INSERT_STAGED)
        return after

    def _claim(
        self,
        raw: Any,
        expected: Checkpoint,
        after: Checkpoint,
        events: list[tuple[str, Event]],
        archives: bool,
    ) -> list[dict[str, Any]]:
        """One round trip: move the checkpoint, read the rows `events` touch, and make sure the
        stages exist (temporary tables live as long as the connection)."""
        ids = sorted({event.job_id for _, event in events})
        with (
            raw.pipeline(),
            raw.cursor() as advance,
            raw.cursor() as setup,
            raw.cursor(row_factory=dict_row) as load,
        ):
            self._advance_checkpoint(advance, expected, after)
            setup.execute(self._create_stage)
            if archives:
                setup.execute(archive.CREATE_STAGE)
            load.execute(self._select, (ids,))
            found: list[dict[str, Any]] = load.fetchall()
            advanced = advance.rowcount == 1
        if not advanced:
            self._create_checkpoint(raw, expected, after)
        return found

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
