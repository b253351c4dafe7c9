"""Reads of PostgreSQL kept for a while, and as last known while it does not answer."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from api.errors import DependencyUnavailableError
from api.readthrough import ReadThrough


class Reads:
    def __init__(self) -> None:
        self.count = 0
        self.down = False
        self.value = "v1"

    async def __call__(self) -> str:
        self.count += 1
        if self.down:
            raise OperationalError("SELECT", {}, ConnectionRefusedError("refused"))
        return self.value


def test_a_value_is_read_once_per_window():
    async def run() -> None:
        cache: ReadThrough[str, str] = ReadThrough("thing", ttl_s=60, timeout_s=1)
        reads = Reads()
        assert await cache.get("k", reads) == "v1"
        reads.value = "v2"
        assert await cache.get("k", reads) == "v1"
        assert reads.count == 1
        cache.forget("k")
        assert await cache.get("k", reads) == "v2"

    asyncio.run(run())


def test_without_a_window_every_get_reads():
    async def run() -> None:
        cache: ReadThrough[str, str] = ReadThrough("thing", ttl_s=0, timeout_s=1)
        reads = Reads()
        await cache.get("k", reads)
        await cache.get("k", reads)
        assert reads.count == 2

    asyncio.run(run())


def test_while_the_database_is_down_the_last_value_read_answers():
    async def run() -> None:
        cache: ReadThrough[str, str] = ReadThrough("thing", ttl_s=0, timeout_s=1)
        reads = Reads()
        assert await cache.get("k", reads) == "v1"
        reads.down = True
        assert await cache.get("k", reads) == "v1"
        # What was never read cannot be judged: 503.
        with pytest.raises(DependencyUnavailableError):
            await cache.get("other", reads)
        reads.down, reads.value = False, "v2"
        assert await cache.get("k", reads) == "v2"  # read again once it answers

    asyncio.run(run())


def test_forgetting_everything_drops_the_last_known_values_too():
    async def run() -> None:
        cache: ReadThrough[str, str] = ReadThrough("thing", ttl_s=60, timeout_s=1)
        reads = Reads()
        await cache.get("k", reads)
        cache.forget()
        reads.down = True
        with pytest.raises(DependencyUnavailableError):
            await cache.get("k", reads)

    asyncio.run(run())


def test_an_entry_that_expires_while_it_is_looked_up_is_read_again():
    """The clock moves on every look: an entry fresh when asked about may be gone when taken
    (a 500 once, in a loaded CI run)."""
    ticks = iter(range(0, 10_000, 5))

    async def run() -> None:
        cache: ReadThrough[str, str] = ReadThrough(
            "thing", ttl_s=6, timeout_s=1, timer=lambda: next(ticks)
        )
        reads = Reads()
        for _ in range(20):
            assert await cache.get("k", reads) == "v1"

    asyncio.run(run())
