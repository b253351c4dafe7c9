"""Telling API processes which jobs a batch made terminal, so that long-polls wake at once.

One PUBLISH per batch, sent only after the batch's transaction committed: an API process woken
by it always reads the terminal row. The message is the job ids joined by spaces, so
`redis-cli SUBSCRIBE <prefix>:terminal` shows it as it is. Pub/sub is not durable: a listener
that was disconnected misses messages, which is why listeners re-read every waiting job after
they subscribe again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import redis

from domain.events import TERMINAL_EVENT_TYPES
from domain.ids import is_job_id
from infra.eventlog import Entry

log = logging.getLogger(__name__)

_TERMINAL_TYPES = frozenset(cls.__name__ for cls in TERMINAL_EVENT_TYPES)


def terminal_job_ids(entries: Sequence[Entry]) -> list[str]:
    """Ids of the jobs with a terminal event among `entries`, once each, in log order."""
    found: dict[str, None] = {}
    for _entry_id, fields in entries:
        job_id = fields.get("job_id", "")
        # A malformed id could hold a space and corrupt the message; the projector skips it too.
        if fields.get("type") in _TERMINAL_TYPES and is_job_id(job_id):
            found[job_id] = None
    return list(found)


def encode_ids(job_ids: Iterable[str]) -> str:
    return " ".join(job_ids)


def decode_ids(message: str) -> list[str]:
    return message.split()


def publish_terminal(client: redis.Redis, channel: str, entries: Sequence[Entry]) -> None:
    """Announce the jobs `entries` made terminal; call only after they are committed.

    A failure is logged and swallowed: waiters time out and re-read anyway, and projecting must
    never stop for a notification.
    """
    job_ids = terminal_job_ids(entries)
    if not job_ids:
        return
    try:
        client.publish(channel, encode_ids(job_ids))
    except redis.RedisError as exc:
        log.warning("could not announce %d terminal jobs: %s", len(job_ids), exc)
