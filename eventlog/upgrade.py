"""Moving a log written before partitions to partition 0's names (`python -m projector
upgrade-log`).

Releases before partitions kept one stream, `<prefix>:events`, and keys without hash tags. Their
jobs' ids are UUIDv7, which domain.ids reads as partition 0, so the upgrade is renames only:
RENAME keeps a stream's entries, ids, consumer group, pending entries and a key's TTL, and
PostgreSQL's rows already say partition 0 (migration 0003). Run it with every role stopped,
after the migration and before the new release starts: while an old API writes to the old
stream, a new consumer would not see the job.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from eventlog.names import LegacyNames, Names

SCAN_COUNT = 1000


class UpgradeRefusedError(RuntimeError):
    """The log is not in the state the upgrade expects; nothing was renamed."""


@dataclass(frozen=True, slots=True)
class Upgraded:
    streams: int
    job_keys: int
    idempotency_keys: int


def upgrade(client: redis.Redis, names: Names) -> Upgraded:
    """Rename every key of the unpartitioned log to partition 0's name. One Redis server only:
    a Redis Cluster never ran the unpartitioned log."""
    legacy = LegacyNames(names.prefix)
    if not client.exists(legacy.events):
        # Nothing to move: a new log, or one upgraded already. (Run again, the renamed
        # Idempotency-Key records would match the old pattern and be renamed once more.)
        return Upgraded(0, 0, 0)
    if client.exists(names.events(0)):
        raise UpgradeRefusedError(
            f"both {legacy.events} and {names.events(0)} exist: the new release has run beside "
            "the old one; stop every role and merge by hand"
        )
    streams = 0
    for old, new in (
        (legacy.events, names.events(0)),
        (legacy.dead_letters, names.dead_letters(0)),
    ):
        if client.exists(old):
            client.rename(old, new)
            streams += 1
    job_keys = 0
    job_prefix = legacy.job_pattern[:-1]
    for key in client.scan_iter(match=legacy.job_pattern, count=SCAN_COUNT):
        if client.renamenx(key, names.job(key[len(job_prefix) :])):
            job_keys += 1
    idempotency_keys = 0
    key_prefix = legacy.idempotency_pattern[:-1]
    for key in list(client.scan_iter(match=legacy.idempotency_pattern, count=SCAN_COUNT)):
        if client.renamenx(key, names.idempotency(key[len(key_prefix) :])):
            idempotency_keys += 1
    return Upgraded(streams, job_keys, idempotency_keys)
