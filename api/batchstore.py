"""The API's access to Redis for batch submissions, guarded like every other call (api/store.py)."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from api.store import _guard
from infra.batchlog import BATCH_SUBMIT_SCRIPT, BatchEntry, batch_submit_args, parse_batch
from infra.eventlog import Submission
from infra.names import Names


class BatchLogClient:
    def __init__(self, client: aioredis.Redis, names: Names, timeout_s: float) -> None:
        self._names = names
        self._timeout_s = timeout_s
        # Registered once: redis-py sends EVALSHA, and loads the script only when Redis lacks it.
        self._submit = client.register_script(BATCH_SUBMIT_SCRIPT)

    async def submit(
        self, entries: Sequence[BatchEntry], job_index_ttl_s: int, idempotency_ttl_s: int
    ) -> list[Submission]:
        """Accept every entry in one round trip; what happened to each, in order."""
        if not entries:
            return []
        keys, argv = batch_submit_args(self._names, entries, job_index_ttl_s, idempotency_ttl_s)
        async with _guard("redis", self._timeout_s):
            reply = await self._submit(keys=keys, args=argv)
        return parse_batch(reply)
