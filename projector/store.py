"""Applying a batch of stream entries to the projection in one transaction.

The checkpoint row is locked first and must still hold the position this batch starts from: two
projectors never apply the same events, and a crash anywhere leaves rows and checkpoint agreeing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.dialects.postgresql import insert

from domain.errors import InferFlowError
from domain.events import Event, decode
from domain.ids import is_job_id
from domain.job import JobState, evolve
from infra.eventlog import Entry
from infra.schema import jobs, projector_checkpoints
from projector import archive
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

    def apply(self, expected: Checkpoint, entries: Sequence[Entry]) -> Checkpoint:
        """Fold `entries` (read after `expected`) into the rows; returns the new checkpoint."""
        if not entries:
            return expected
        with self._engine.begin() as conn:
            return self.apply_in(conn, expected, entries, self._archives)

    def apply_in(
        self, conn: Connection, expected: Checkpoint, entries: Sequence[Entry], archives: bool
    ) -> Checkpoint:
        """`apply` inside the caller's transaction; the archive is written when `archives`."""
        if not entries:
            return expected
        if self.read_checkpoint(conn, lock=True) != expected:
            raise CheckpointMovedError(f"projection {self._name} moved past {expected}")
        changed = self._fold(conn, decode_entries(entries))
        self._write_rows(conn, changed)
        if archives:
            archive.write(conn, entries)
        after = Checkpoint(entries[-1][0], expected.entries_read + len(entries))
        self._write_checkpoint(conn, after)
        return after

    def _fold(
        self, conn: Connection, events: list[tuple[str, Event]]
    ) -> dict[str, tuple[JobState, str]]:
        ids = sorted({event.job_id for _, event in events})
        states = self._load(conn, ids)
        changed: dict[str, tuple[JobState, str]] = {}
        for entry_id, event in events:
            before = states.get(event.job_id)
            after = evolve(before, event)
            if after != before:
                states[event.job_id] = after
                changed[event.job_id] = (after, entry_id)
        return changed

    def _load(self, conn: Connection, ids: list[str]) -> dict[str, JobState]:
        if not ids:
            return {}
        table = self._table
        query = select(table).where(table.c.job_id.in_(ids)).with_for_update()
        return {str(row["job_id"]): to_state(row) for row in conn.execute(query).mappings()}

    def _write_rows(self, conn: Connection, changed: dict[str, tuple[JobState, str]]) -> None:
        if not changed:
            return
        rows = [to_row(state, entry_id) for state, entry_id in changed.values()]
        stmt = insert(self._table)
        columns = self._table.columns
        update = {c.name: stmt.excluded[c.name] for c in columns if c.name != "job_id"}
        conn.execute(stmt.on_conflict_do_update(index_elements=["job_id"], set_=update), rows)

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
