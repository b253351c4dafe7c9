"""Where the live projector is: its checkpoint row in PostgreSQL, read once per poll.

Reading one primary-key row is the cheapest way to tell when the projection (what clients
read) has caught up with an entry of the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from bench.outcomes import entry_key

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

    def read(self) -> tuple[str, int]:
        """The last projected entry id and how many entries the projector has read."""
        row = self._conn.execute(
            "SELECT last_entry_id, entries_read FROM projector_checkpoints WHERE name = %s",
            (self._name,),
        ).fetchone()
        return (str(row[0]), int(row[1])) if row else ("0-0", 0)

    def wait_past(self, entry_id: str, timeout_s: float = 120.0) -> float | None:
        """time.time() when the projection had applied `entry_id`; None after `timeout_s`."""
        target = entry_key(entry_id)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if entry_key(self.read()[0]) >= target:
                return time.time()
            time.sleep(POLL_S)
        return None

    def wait_entries(self, count: int, timeout_s: float) -> list[tuple[float, int]]:
        """Samples (time.time(), entries read) until the projector has read `count` entries."""
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            samples.append((time.time(), self.read()[1]))
            if samples[-1][1] >= count:
                break
            time.sleep(POLL_S)
        return samples

    def close(self) -> None:
        self._conn.close()


class Watch:
    """Samples the checkpoint in a thread, so a catch-up is timed when it happens, not when the
    caller gets round to asking (after reading the log, say)."""

    def __init__(self, database_url: str) -> None:
        self.samples: list[tuple[float, tuple[int, int]]] = []
        self._checkpoint = Checkpoint(database_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), entry_key(self._checkpoint.read()[0])))
            self._stop.wait(POLL_S)

    def first_past(self, entry_id: str, timeout_s: float = 120.0) -> float | None:
        """time.time() of the first sample at or past `entry_id`; None after `timeout_s`."""
        target, seen = entry_key(entry_id), 0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for at, key in self.samples[seen:]:
                if key >= target:
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
