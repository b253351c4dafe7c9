"""Which projector process projects which partition: a PostgreSQL advisory lock per
(projection, partition), held on one connection of the process for as long as it projects it.

The checkpoint check (projector.store) already keeps two projectors from applying the same
events; the lease keeps them from taking turns at it. Projectors started for the same
partitions are then one active and the others standing by: a process that dies drops its
connection, PostgreSQL releases its locks, and a standby takes the partitions over at its next
try. To spread partitions over processes, give each its own (`PROJECTOR_PARTITIONS`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# The two-key form of the advisory lock: the projection's name hashed, and the partition.
_TRY = "SELECT pg_try_advisory_lock(hashtext(%s), %s)"
_UNLOCK = "SELECT pg_advisory_unlock(hashtext(%s), %s)"


def _conninfo(database_url: str) -> str:
    """psycopg's URL from SQLAlchemy's (postgresql+psycopg://...)."""
    scheme, sep, rest = database_url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else database_url


class Leases:
    def __init__(self, database_url: str, projection: str) -> None:
        self._conninfo = _conninfo(database_url)
        self._key = f"inferflow-projector:{projection}"
        self._conn: psycopg.Connection[Any] | None = None
        self._held: set[int] = set()
        self._lock = threading.Lock()  # the partitions' threads share the connection

    def acquire(self, partition: int, limit: int = 0) -> bool:
        """Take the partition's lease if no process holds it and this one holds fewer than
        `limit` (0: no limit); True when this one holds it."""
        with self._lock:
            if partition in self._held:
                return True
            if limit and len(self._held) >= limit:
                return False
            try:
                conn = self._connection()
                got = conn.execute(_TRY, (self._key, partition)).fetchone()
            except psycopg.Error as exc:
                self._lost(exc)
                return False
            if got and got[0]:
                self._held.add(partition)
                log.info("projecting partition %d", partition)
                return True
            return False

    def holds(self, partition: int) -> bool:
        """Whether the lease is still this process's: its connection is alive."""
        with self._lock:
            if partition not in self._held or self._conn is None:
                return False
            try:
                self._conn.execute("SELECT 1")
            except psycopg.Error as exc:
                self._lost(exc)
                return False
            return True

    def release(self, partition: int) -> None:
        with self._lock:
            if partition not in self._held or self._conn is None:
                return
            self._held.discard(partition)
            try:
                self._conn.execute(_UNLOCK, (self._key, partition))
            except psycopg.Error as exc:
                self._lost(exc)

    def close(self) -> None:
        with self._lock:
            self._held.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        return self._conn

    def _lost(self, exc: Exception) -> None:
        """The connection failed: every lock it held is gone with it."""
        if self._held:
            log.warning("partition leases lost (%s): %s", exc, sorted(self._held))
        self._held.clear()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
