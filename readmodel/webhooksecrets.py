"""Each tenant's webhook signing secret: made on first use, rotated on request, read by the API
(GET /v1/webhooks/secret) and by the notifier, which signs with every secret still valid.

A secret is Standard Webhooks' form: `whsec_` and the base64 of 32 random bytes. Rotating makes
a new one and keeps the old one valid for an overlap (WEBHOOK_SECRET_OVERLAP_S), during which
every delivery carries a signature by each, so a receiver switches whenever it likes within it.
A second rotation within the overlap ends the oldest secret's validity at once.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel.tables import webhook_secrets

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


@dataclass(frozen=True, slots=True)
class TenantSecrets:
    tenant: str
    secret: str
    created_at: datetime
    previous_secret: str | None = None
    previous_valid_until: datetime | None = None
    rotated_at: datetime | None = None

    def valid(self, now: datetime) -> list[str]:
        """The secrets a delivery at `now` is signed with: the current one first."""
        found = [self.secret]
        until = self.previous_valid_until
        if self.previous_secret and until is not None and now < until:
            found.append(self.previous_secret)
        return found


def _record(row: Any) -> TenantSecrets:
    return TenantSecrets(
        tenant=row.tenant,
        secret=row.secret,
        created_at=row.created_at,
        previous_secret=row.previous_secret,
        previous_valid_until=row.previous_valid_until,
        rotated_at=row.rotated_at,
    )


class SecretStore:
    """The `webhook_secrets` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, tenant: str) -> TenantSecrets:
        """The tenant's secrets, a first secret made if it has none (by whoever comes first)."""
        query = select(webhook_secrets).where(webhook_secrets.c.tenant == tenant)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is not None:
            return _record(row)
        made = {"tenant": tenant, "secret": new_secret(), "created_at": datetime.now(UTC)}
        async with self._engine.begin() as conn:
            await conn.execute(insert(webhook_secrets).values(**made).on_conflict_do_nothing())
            row = (await conn.execute(query)).one()
        return _record(row)

    async def rotate(self, tenant: str, overlap_s: float) -> TenantSecrets:
        """A new secret for the tenant; the one it replaces stays valid for `overlap_s`."""
        await self.get(tenant)
        now = datetime.now(UTC)
        table = webhook_secrets
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    update(table)
                    .where(table.c.tenant == tenant)
                    .values(
                        previous_secret=table.c.secret,
                        previous_valid_until=now + timedelta(seconds=overlap_s),
                        secret=new_secret(),
                        rotated_at=now,
                    )
                    .returning(*table.c)
                )
            ).one()
        return _record(row)
