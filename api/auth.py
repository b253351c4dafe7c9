"""Who is asking: a request's API key (`Authorization: Bearer <key>`), its tenant and scopes.

What a process read of a key is trusted for AUTH_CACHE_MS, bad keys included (a flood of them
costs PostgreSQL one read each per window), so a revoked key stops working on every API process
within that time; while PostgreSQL does not answer, keys are judged as last read
(api.readthrough). With AUTH_ENABLED off, every request acts as an admin of the default tenant.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from api.errors import UnauthenticatedError
from api.keys import ApiKey, KeyStore, Scope, key_hash, well_formed
from api.readthrough import ReadThrough
from api.tenants import rate
from domain.tenants import DEFAULT_TENANT
from eventlog.ratelimit import Rate

log = logging.getLogger(__name__)

SCHEME = "Bearer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The tenant a request acts for, what it may do, and the key it came with."""

    tenant: str
    scopes: frozenset[Scope]
    key_id: str | None = None
    # The key's own request rate, within its tenant's.
    requests: Rate | None = None

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def allows(self, scope: Scope) -> bool:
        return self.admin or scope in self.scopes

    def sees(self, tenant: str) -> bool:
        """Whether this principal may see (and act on) a job of `tenant`."""
        return self.admin or tenant == self.tenant

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key.tenant, key.scopes, key.key_id, rate(key.requests_per_s, key.requests_burst))


TRUSTED = Principal(DEFAULT_TENANT, frozenset({Scope.ADMIN}))


def bearer_token(authorization: list[str]) -> str:
    """The key of an `Authorization` header sent once with the Bearer scheme (RFC 6750)."""
    if not authorization:
        raise UnauthenticatedError("this route needs an API key: Authorization: Bearer <key>")
    if len(authorization) > 1:
        raise UnauthenticatedError("Authorization sent more than once", "invalid_request")
    scheme, _, token = authorization[0].strip().partition(" ")
    if scheme.lower() != SCHEME.lower() or not token.strip():
        raise UnauthenticatedError("Authorization must be: Bearer <key>", "invalid_request")
    return token.strip()


class Authenticator:
    def __init__(self, store: KeyStore, enabled: bool, cache_ms: int, timeout_s: float) -> None:
        self._store = store
        self.enabled = enabled
        # By hash: the cache holds no usable key.
        self._keys: ReadThrough[str, Principal | None] = ReadThrough(
            "API key", cache_ms / 1000, timeout_s
        )
        if not enabled:
            log.warning(
                "AUTH_ENABLED is off: every request acts as an admin of the default tenant; "
                "run this only on a trusted single-tenant network"
            )

    def forget(self) -> None:
        """Drop what this process read of keys (after a revocation here: at once)."""
        self._keys.forget()

    async def principal(self, authorization: list[str]) -> Principal:
        if not self.enabled:
            return TRUSTED
        key = bearer_token(authorization)
        if not well_formed(key):
            raise UnauthenticatedError("not an InferFlow API key", "invalid_token")
        found = await self._keys.get(key_hash(key), lambda: self._read(key))
        if found is None:
            raise UnauthenticatedError("unknown or revoked API key", "invalid_token")
        return found

    async def _read(self, key: str) -> Principal | None:
        record = await self._store.find(key)
        return Principal.of(record) if record else None
