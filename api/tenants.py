"""Each tenant's limits: its own row of the `tenants` table, else the settings' defaults.

Read through a short cache (AUTH_CACHE_MS), so a change reaches every API process within it
without a read of PostgreSQL per request, and as last known while PostgreSQL does not answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from api.readthrough import ReadThrough
from api.settings import ApiSettings
from eventlog.ratelimit import Rate
from readmodel.tables import tenants

LIMIT_COLUMNS = ("requests_per_s", "requests_burst", "jobs_per_s", "jobs_burst", "max_queued")


def rate(per_s: float | None, burst: int | None) -> Rate | None:
    """A rate, or None for no limit (a rate of 0 or none); a burst of 0 or none is one
    second's worth."""
    if not per_s:
        return None
    return Rate(per_s=per_s, burst=burst or max(1, math.ceil(per_s)))


@dataclass(frozen=True, slots=True)
class TenantLimits:
    """What a tenant may do; None: no limit."""

    requests: Rate | None = None
    jobs: Rate | None = None
    # Most jobs accepted and not finished at once (0: none).
    max_queued: int = 0

    def cap_share(self, partitions: int) -> int:
        """The cap each partition holds the tenant to: jobs go to partitions at random, so
        each holds an equal share (the whole cap with one partition); 0: none."""
        return math.ceil(self.max_queued / partitions) if self.max_queued else 0


class TenantStore:
    """The `tenants` table, and each tenant's limits with the defaults filled in."""

    def __init__(self, engine: AsyncEngine, settings: ApiSettings) -> None:
        self._engine = engine
        self._settings = settings
        self._limits: ReadThrough[str, TenantLimits] = ReadThrough(
            "tenant limits",
            settings.auth_cache_ms / 1000,
            settings.dependency_timeout_ms / 1000,
        )

    async def own(self, tenant: str) -> dict[str, Any]:
        """The limits set for `tenant` itself, by column (None where it has the default)."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(tenants).where(tenants.c.tenant == tenant))).first()
        return {column: getattr(row, column) if row else None for column in LIMIT_COLUMNS}

    async def set_own(self, tenant: str, values: dict[str, Any]) -> dict[str, Any]:
        """Set `tenant`'s limits (every column: None goes back to the default)."""
        row = {column: values.get(column) for column in LIMIT_COLUMNS}
        statement = insert(tenants).values(tenant=tenant, updated_at=datetime.now(UTC), **row)
        statement = statement.on_conflict_do_update(
            index_elements=[tenants.c.tenant],
            set_={**row, "updated_at": statement.excluded.updated_at},
        )
        async with self._engine.begin() as conn:
            await conn.execute(statement)
        self._limits.forget(tenant)
        return row

    async def limits(self, tenant: str) -> TenantLimits:
        """`tenant`'s limits in force (api.readthrough: cached, last known while PostgreSQL
        does not answer)."""
        return await self._limits.get(tenant, lambda: self._read(tenant))

    async def _read(self, tenant: str) -> TenantLimits:
        return self.effective(await self.own(tenant))

    def effective(self, own: dict[str, Any]) -> TenantLimits:
        """`own` limits with the settings' defaults where it has none."""
        s = self._settings

        def pick(column: str, default: Any) -> Any:
            return own[column] if own.get(column) is not None else default

        return TenantLimits(
            requests=rate(
                pick("requests_per_s", s.tenant_requests_per_s),
                pick("requests_burst", s.tenant_requests_burst),
            ),
            jobs=rate(
                pick("jobs_per_s", s.tenant_jobs_per_s), pick("jobs_burst", s.tenant_jobs_burst)
            ),
            max_queued=pick("max_queued", s.tenant_max_queued),
        )
