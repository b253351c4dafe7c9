"""Signing a webhook the Standard Webhooks way, with the `standardwebhooks` package: the
`webhook-id`, `webhook-timestamp` and `webhook-signature` headers, the signature `v1,` and the
base64 HMAC-SHA256 of `id.timestamp.body`, one per valid secret of the tenant (two during a
rotation), space-separated.

Secrets are the tenant's in PostgreSQL (readmodel.webhooksecrets), trusted for a short time once
read (WEBHOOK_SECRET_CACHE_MS), so that a rotation signs with both secrets within that time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from cachetools import TTLCache
from standardwebhooks import Webhook

from readmodel.webhooksecrets import SecretStore, TenantSecrets


def headers(webhook_id: str, at: datetime, body: bytes, secrets: list[str]) -> dict[str, str]:
    """The signature headers of `body` sent at `at`, signed with each of `secrets`."""
    signatures = [Webhook(secret).sign(webhook_id, at, body) for secret in secrets]
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


class Signer:
    def __init__(self, store: SecretStore, cache_ms: int) -> None:
        self._store = store
        self._cache: TTLCache[str, TenantSecrets] | None = (
            TTLCache(10_000, cache_ms / 1000, timer=time.monotonic) if cache_ms > 0 else None
        )
        # One read per tenant at a time: the deliveries that find its secrets expired together
        # wait for that read instead of each taking a connection of their own.
        self._reading: dict[str, asyncio.Future[TenantSecrets]] = {}

    async def secrets(self, tenant: str, now: datetime) -> list[str]:
        found = self._cache.get(tenant) if self._cache is not None else None
        if found is None:
            found = await self._read(tenant)
        return found.valid(now)

    async def _read(self, tenant: str) -> TenantSecrets:
        pending = self._reading.get(tenant)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[TenantSecrets] = asyncio.get_running_loop().create_future()
        self._reading[tenant] = future
        try:
            found = await self._store.get(tenant)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else waited
            raise
        finally:
            del self._reading[tenant]
        future.set_result(found)
        if self._cache is not None:
            self._cache[tenant] = found
        return found

    async def sign(self, tenant: str, webhook_id: str, body: bytes) -> dict[str, str]:
        now = datetime.now(UTC)
        return headers(webhook_id, now, body, await self.secrets(tenant, now))
