"""Where the live projector is: its checkpoint rows in PostgreSQL, read once per poll.

The projector keeps a checkpoint per lane of each partition (readmodel.checkpoints), named here
by the lane's `LaneKey` (partition, lane name), as bench.outcomes names the lanes' streams.
Reading a few primary-key rows is the cheapest way to tell when the projection (what clients
read) has caught up with an entry of the log. A lane without a row has not been projected yet.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from bench.outcomes import LaneKey
from eventlog.lanes import DEFAULT_LANE
from eventlog.positions import position

POLL_S = 0.02


def plain_url(database_url: str) -> str:
    """A libpq URL for psycopg from the SQLAlchemy one the services use."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Checkpoint:
    def __init__(self, database_url: str, name: str = "jobs") -> None:
        self.database_url = database_url
        self._conn = psycopg.connect(plain_url(database_url), autocommit=True)
        self._name = name

    def read(self, lane: LaneKey = (0, DEFAULT_LANE.name)) -> tuple[str, int]:
        """The last projected entry id of a lane and how many entries its projector has read
        of it."""
        row = self._conn.execute(
            "SELECT last_entry_id, entries_read FROM projector_checkpoints"
            " WHERE name = %s AND partition = %s AND lane = %s",
            (self._name, *lane),
        ).fetchone()
        return (str(row[0]), int(row[1])) if row else ("0-0", 0)

    def read_all(self) -> dict[LaneKey, tuple[int, int]]:
        """Every lane's last projected position, in one query."""
        rows = self._conn.execute(
            "SELECT partition, lane, last_entry_id FROM projector_checkpoints WHERE name = %s",
            (self._name,),
        ).fetchall()
        return {(int(p), str(lane)): position(str(entry_id)) for p, lane, entry_id in rows}

    def wait_past(self, entries: dict[LaneKey, str], timeout_s: float = 120.0) -> float | None:
        """time.time() when the projection had applied every lane's entry of `entries`; None
        after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if past(self.read_all(), entries):
                return time.time()
            time.sleep(POLL_S)
        return None

    def entries_read(self) -> int:
        """How many entries the projectors have read, over every lane of every partition."""
        row = self._conn.execute(
            "SELECT coalesce(sum(entries_read), 0) FROM projector_checkpoints WHERE name = %s",
            (self._name,),
        ).fetchone()
        return int(row[0]) if row else 0

    def wait_entries(self, count: int, timeout_s: float) -> list[tuple[float, int]]:
        """Samples (time.time(), entries read, all lanes) until the projectors have read
        `count` entries."""
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            samples.append((time.time(), self.entries_read()))
            if samples[-1][1] >= count:
                break
            time.sleep(POLL_S)
        return samples

    def close(self) -> None:
        self._conn.close()


def past(positions: dict[LaneKey, tuple[int, int]], entries: dict[LaneKey, str]) -> bool:
    """Whether `positions` (read_all) are at or past every lane's entry of `entries`."""
    return all(positions.get(key, (0, 0)) >= position(e) for key, e in entries.items())


class Watch:
    """Samples the checkpoint in a thread, so a catch-up is timed when it happens, not when the
    caller gets round to asking (after reading the log, say)."""

    def __init__(self, database_url: str) -> None:
        self.samples: list[tuple[float, dict[LaneKey, tuple[int, int]]]] = []
        self._checkpoint = Checkpoint(database_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self._checkpoint.read_all()))
            self._stop.wait(POLL_S)

    def first_past(self, entries: dict[LaneKey, str], timeout_s: float = 120.0) -> float | None:
        """time.time() of the first sample at or past every lane's entry of `entries`; None
        after `timeout_s`."""
        seen = 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, positions in self.samples[seen:]:
                if past(positions, entries):
                    return at
            seen = len(self.samples)
            time.sleep(POLL_S)
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._checkpoint.close()


@contextmanager
def watching(database_url: str) -> Iterator[Watch]:
    watch = Watch(database_url)
    try:
        yield watch
    finally:
        watch.close()
