"""API keys: their format, their scopes, and where they are kept.

A key is `ifk_` and 40 random base62 characters (238 bits), then a 6-character checksum of them:
the prefix lets secret scanners spot a leaked key and the checksum lets them (and us) tell a real
key from a look-alike without asking the database, as GitHub's `ghp_` tokens do. A key is shown
once, when it is made; PostgreSQL keeps only its SHA-256 (a key is random enough that a slow hash
would add nothing), its tenant, its scopes and a hint of its first and last characters.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from readmodel.tables import api_keys

PREFIX = "ifk_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SECRET_CHARS = 40
_CHECKSUM_CHARS = 6
KEY_CHARS = len(PREFIX) + _SECRET_CHARS + _CHECKSUM_CHARS


class Scope(StrEnum):
    SUBMIT = "submit"
    READ = "read"
    CANCEL = "cancel"
    # Every scope, of every tenant, and the keys themselves.
    ADMIN = "admin"


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(secret: str) -> str:
    return _base62(zlib.crc32(secret.encode()), _CHECKSUM_CHARS)


def new_key() -> str:
    secret = "".join(secrets.choice(_ALPHABET) for _ in range(_SECRET_CHARS))
    return PREFIX + secret + _checksum(secret)


def well_formed(key: str) -> bool:
    """The key has our shape and its checksum holds: worth a look-up."""
    if len(key) != KEY_CHARS or not key.startswith(PREFIX):
        return False
    body = key[len(PREFIX) :]
    secret, checksum = body[:_SECRET_CHARS], body[_SECRET_CHARS:]
    if any(ch not in _ALPHABET for ch in body):
        return False
    return secrets.compare_digest(_checksum(secret), checksum)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def hint(key: str) -> str:
    return f"{key[: len(PREFIX) + 4]}...{key[-4:]}"


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def parse_scopes(raw: Iterable[str]) -> frozenset[Scope]:
    """Scopes by name; ValueError names one that does not exist."""
    scopes = set()
    for name in raw:
        try:
            scopes.add(Scope(name.strip()))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise ValueError(f"unknown scope {name!r} (known: {known})") from None
    if not scopes:
        raise ValueError("a key needs at least one scope")
    return frozenset(scopes)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as it is kept: everything but the key itself."""

    key_id: str
    tenant: str
    scopes: frozenset[Scope]
    name: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None = None
    requests_per_s: float | None = None
    requests_burst: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _record(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        tenant=row.tenant,
        scopes=frozenset(Scope(s) for s in row.scopes),
        name=row.name,
        hint=row.hint,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        requests_per_s=row.requests_per_s,
        requests_burst=row.requests_burst,
    )


class KeyStore:
    """The `api_keys` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        tenant: str,
        scopes: Iterable[Scope],
        name: str = "",
        requests_per_s: float | None = None,
        requests_burst: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key of `tenant`: its record, and the key itself (never kept)."""
        key = new_key()
        record = ApiKey(
            key_id=new_key_id(),
            tenant=tenant,
            scopes=frozenset(scopes),
            name=name,
            hint=hint(key),
            created_at=datetime.now(UTC),
            requests_per_s=requests_per_s,
            requests_burst=requests_burst,
        )
        values = {
            "key_id": record.key_id,
            "tenant": tenant,
            "scopes": sorted(s.value for s in record.scopes),
            "name": name,
            "key_hash": key_hash(key),
            "hint": record.hint,
            "requests_per_s": requests_per_s,
            "requests_burst": requests_burst,
            "created_at": record.created_at,
        }
        async with self._engine.begin() as conn:
            await conn.execute(insert(api_keys).values(**values))
        return record, key

    async def find(self, key: str) -> ApiKey | None:
        """The live (not revoked) key's record, if `key` is one."""
        query = select(api_keys).where(
            api_keys.c.key_hash == key_hash(key), api_keys.c.revoked_at.is_(None)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _record(row) if row else None

    async def listed(self, tenant: str | None = None) -> Sequence[ApiKey]:
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if tenant is not None:
            query = query.where(api_keys.c.tenant == tenant)
        async with self._engine.connect() as conn:
            return [_record(row) for row in (await conn.execute(query)).all()]

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke the key (again, harmlessly); None when there is no such key."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(api_keys)
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            row = (await conn.execute(select(api_keys).where(api_keys.c.key_id == key_id))).first()
        return _record(row) if row else None
