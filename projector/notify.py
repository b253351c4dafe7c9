"""Telling API processes which jobs a batch made terminal, with their rows, so that long-polls
answer at once (the message's format: readmodel.announcement).

One PUBLISH per batch, sent only after the batch's transaction committed. Pub/sub is not
durable: a listener that was disconnected misses messages, which is why listeners re-read every
waiting job after they subscribe again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from eventlog.connection import Client
from readmodel import announcement

log = logging.getLogger(__name__)


def publish_terminal(client: Client, channel: str, rows: Sequence[announcement.Row]) -> None:
    """Announce the jobs whose rows, among those a batch changed, are terminal; call only after
    the batch committed.

    A failure is logged and swallowed: waiters time out and re-read anyway, and projecting must
    never stop for a notification.
    """
    terminal = announcement.terminal_rows(rows)
    if not terminal:
        return
    try:
        client.publish(channel, announcement.encode(terminal))
    except redis.RedisError as exc:
        log.warning("could not announce %d terminal jobs: %s", len(terminal), exc)
