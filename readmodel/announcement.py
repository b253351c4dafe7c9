"""The announcement of jobs that became terminal, as the projector publishes it and the API
reads it (one pub/sub message per projected batch, on `<prefix>:terminal`).

One line per job: its id, then, in batches of up to `ROWS_UP_TO` such jobs, a space and its row
as JSON: the row just committed, and final, since a terminal job never changes again. A listener
answers a waiting request from that row without reading PostgreSQL; a line with no row (a large
batch, whose rows would make one message too big for a subscriber's output buffer) means "read
it". Split on whitespace, a message gives the job ids as the first word of every line, so
`redis-cli SUBSCRIBE <prefix>:terminal` shows it as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from domain.job import JobStatus
from readmodel.rows import to_json

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
