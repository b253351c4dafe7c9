"""Each tenant's webhook secret in PostgreSQL: made once, rotated with an overlap, apart from
every other tenant's."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import create_async_engine
from standardwebhooks import Webhook

from readmodel.webhooksecrets import SecretStore


def run(database_url, work):
    async def main():
        engine = create_async_engine(database_url)
        try:
            return await work(SecretStore(engine))
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_a_tenants_secret_is_made_once_in_the_standard_form(database_url):
    async def work(store):
        return await asyncio.gather(*(store.get("acme") for _ in range(5))), await store.get("b")

    found, other = run(database_url, work)
    assert len({f.secret for f in found}) == 1
    secret = found[0].secret
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    Webhook(secret)  # the library takes it as it is
    assert other.secret != secret and other.tenant == "b"
    assert found[0].valid(datetime.now(UTC)) == [secret]


def test_rotation_keeps_the_previous_secret_valid_for_the_overlap(database_url):
    async def work(store):
        first = await store.get("acme")
        rotated = await store.rotate("acme", 3600)
        again = await store.rotate("acme", 0)
        return first, rotated, again, await store.get("other")

    first, rotated, again, other = run(database_url, work)
    now = datetime.now(UTC)
    assert rotated.secret != first.secret and rotated.previous_secret == first.secret
    assert rotated.valid(now) == [rotated.secret, first.secret]
    assert rotated.valid(now + timedelta(seconds=3601)) == [rotated.secret]
    # A second rotation without overlap: only the newest signs.
    assert again.previous_secret == rotated.secret and again.valid(now) == [again.secret]
    assert other.previous_secret is None


def test_rotating_a_tenant_that_has_no_secret_makes_one_first(database_url):
    async def work(store):
        return await store.rotate("new", 60)

    rotated = run(database_url, work)
    assert rotated.previous_secret and rotated.secret != rotated.previous_secret
