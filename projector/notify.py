"""Telling API processes which jobs a batch made terminal, with their rows, so that long-polls
answer at once.

One PUBLISH per batch, sent only after the batch's transaction committed. One line per job: its
id, then, in batches of up to `ROWS_UP_TO` such jobs, a space and its row as JSON: the row just
committed, and final, since a terminal job never changes again. A listener answers a waiting
request from that row without reading PostgreSQL; a line with no row (a large batch, whose rows
would make one message too big for a subscriber's output buffer) means "read it". Split on
whitespace, a message gives the job ids as the first word of every line, so `redis-cli
SUBSCRIBE <prefix>:terminal` shows it as it is. Pub/sub is not durable: a listener that was
disconnected misses messages, which is why listeners re-read every waiting job after they
subscribe again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from domain.job import JobStatus
from projector.rows import to_json

log = logging.getLogger(__name__)

ROWS_UP_TO = 64
_TERMINAL = frozenset(status.value for status in JobStatus if status.is_terminal)

Row = Mapping[str, Any]


def terminal_rows(rows: Sequence[Row]) -> list[Row]:
    """The rows of `rows` whose job is terminal. Their ids hold no space, which the line format
    depends on: the projector passes over events whose job id is not a UUID."""
    return [row for row in rows if row["status"] in _TERMINAL]


def encode(rows: Sequence[Row]) -> str:
    if len(rows) > ROWS_UP_TO:
        return "\n".join(str(row["job_id"]) for row in rows)
    return "\n".join(f"{row['job_id']} {to_json(row)}" for row in rows)


def decode(message: str) -> dict[str, str | None]:
    """Job id -> its row as JSON, or None when the message names the job without one. A line
    of ids separated by spaces, as earlier projectors wrote, names them all."""
    found: dict[str, str | None] = {}
    for line in message.splitlines():
        job_id, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if rest.startswith("{"):
            found[job_id] = rest
            continue
        for each in line.split():
            found.setdefault(each, None)
    return found


def publish_terminal(client: redis.Redis, channel: str, rows: Sequence[Row]) -> None:
    """Announce the jobs whose rows, among those a batch changed, are terminal; call only after
    the batch committed.

    A failure is logged and swallowed: waiters time out and re-read anyway, and projecting must
    never stop for a notification.
    """
    terminal = terminal_rows(rows)
    if not terminal:
        return
    try:
        client.publish(channel, encode(terminal))
    except redis.RedisError as exc:
        log.warning("could not announce %d terminal jobs: %s", len(terminal), exc)
