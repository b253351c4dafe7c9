"""Reading a lane of the log after a position: from the archive where the stream was trimmed,
else Redis.

The archive holds every entry the live projector has applied, so the part of a lane that
retention removed from its stream is read from PostgreSQL, and the rest from the stream.
"""

from __future__ import annotations

from sqlalchemy import Engine

from eventlog.connection import Client
from eventlog.entries import Entry, range_entries
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.positions import position
from readmodel import archive


class LogSource:
    """One lane of one partition's log; `stream` is the lane's."""

    def __init__(
        self,
        client: Client,
        engine: Engine,
        stream: str,
        partition: int,
        lane: Lane = DEFAULT_LANE,
    ) -> None:
        self._redis = client
        self._engine = engine
        self._stream = stream
        self._partition = partition
        self.lane = lane

    def _first_stream_id(self) -> str | None:
        first = range_entries(self._redis.xrange(self._stream, "-", "+", count=1))
        return first[0][0] if first else None

    def batch(self, after: str, until: str | None, count: int) -> tuple[list[Entry], bool]:
        """Up to `count` entries after `after` (up to `until`, inclusive), and whether they came
        from the archive (and so need not be archived again)."""
        first = self._first_stream_id()
        if first is None or position(first) > position(after):
            # Entries between `after` and the stream's first one may have been trimmed.
            with self._engine.connect() as conn:
                entries = archive.read(
                    conn, self._partition, after, until, before=first, count=count, lane=self.lane
                )
            if entries:
                return entries, True
        reply = self._redis.xrange(self._stream, f"({after}", until or "+", count=count)
        return range_entries(reply), False
