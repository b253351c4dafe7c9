"""Where each projection has read the log up to: one row of `projector_checkpoints` per
projection, partition and lane (eventlog.lanes), written in the same transaction as the rows it
covers. A lane without a row has not been projected yet: its checkpoint is the start of the
lane's stream."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, select

from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.positions import START
from readmodel.tables import projector_checkpoints

log = logging.getLogger(__name__)

# The projection the API reads, and the name of its checkpoint.
LIVE = "jobs"

# Lanes in the order of their names as PostgreSQL's "C" collation sorts them, which is Python's
# order of the same strings: the order in which every writer locks a partition's checkpoint
# rows, so that two transactions that lock several never wait for each other in a circle.
LOCK_ORDER = 'lane COLLATE "C"'


@dataclass(frozen=True, slots=True)
class Checkpoint:
    last_entry_id: str = START
    entries_read: int = 0


def query(name: str = LIVE, partition: int = 0, lane: Lane = DEFAULT_LANE) -> Select[str, int]:
    """The checkpoint of projection `name` in a lane of `partition` (no row before the lane's
    first batch)."""
    table = projector_checkpoints
    return select(table.c.last_entry_id, table.c.entries_read).where(
        table.c.name == name, table.c.partition == partition, table.c.lane == lane.name
    )


def query_partition(name: str = LIVE, partition: int = 0) -> Select[str, str, int]:
    """The checkpoints of projection `name` in `partition`, one row per lane it has applied:
    (lane name, last entry id, entries read)."""
    table = projector_checkpoints
    return select(table.c.lane, table.c.last_entry_id, table.c.entries_read).where(
        table.c.name == name, table.c.partition == partition
    )


def query_all(name: str = LIVE) -> Select[int, str, str, int]:
    """The checkpoints of projection `name`, one row per partition and lane it has applied:
    (partition, lane name, last entry id, entries read)."""
    table = projector_checkpoints
    return select(
        table.c.partition, table.c.lane, table.c.last_entry_id, table.c.entries_read
    ).where(table.c.name == name)


def from_row(row: Any) -> Checkpoint:
    """A row of `query` as a Checkpoint; None (no row yet) is the start of the log."""
    return Checkpoint() if row is None else Checkpoint(row[0], row[1])


def lane_named(name: str) -> Lane | None:
    """The lane a checkpoint row names; None (logged) for a name that is no lane."""
    try:
        return Lane.parse(name)
    except ValueError:
        log.warning("a checkpoint names no lane: %r", name)
        return None


def by_lane(rows: Iterable[Any]) -> dict[Lane, Checkpoint]:
    """Rows of `query_partition` as each lane's checkpoint."""
    found = {}
    for name, last_entry_id, entries_read in rows:
        lane = lane_named(name)
        if lane is not None:
            found[lane] = Checkpoint(last_entry_id, entries_read)
    return found


def by_partition_and_lane(rows: Iterable[Any]) -> dict[int, dict[Lane, Checkpoint]]:
    """Rows of `query_all` as each partition's lanes' checkpoints."""
    found: dict[int, dict[Lane, Checkpoint]] = {}
    for partition, name, last_entry_id, entries_read in rows:
        lane = lane_named(name)
        if lane is not None:
            found.setdefault(partition, {})[lane] = Checkpoint(last_entry_id, entries_read)
    return found
