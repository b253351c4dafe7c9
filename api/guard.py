"""Every call the API makes to Redis or PostgreSQL runs under a time limit, and whatever the
driver raises becomes DependencyUnavailableError: a 503 with Retry-After, never a 500."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg
from psycopg_pool import PoolTimeout
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError

from api.errors import DependencyUnavailableError
from eventlog.connection import closed_transport
from eventlog.errors import NotReplicatedError


@asynccontextmanager
async def guarded(dependency: str, timeout_s: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        raise DependencyUnavailableError(dependency, f"no answer within {timeout_s:.1f} s") from exc
    except (RedisError, OSError) as exc:
        raise DependencyUnavailableError(dependency, str(exc) or type(exc).__name__) from exc
    except NotReplicatedError as exc:
        raise DependencyUnavailableError(dependency, str(exc)) from exc
    except (RuntimeError, AttributeError, TypeError) as exc:
        if not closed_transport(exc):
            raise
        raise DependencyUnavailableError(dependency, f"connection closed ({exc})") from exc
    except (OperationalError, DBAPIError) as exc:
        raise DependencyUnavailableError(dependency, str(exc.orig or exc)) from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DependencyUnavailableError(dependency, str(exc)) from exc


T = TypeVar("T")

CLOSED_TRIES = 4


def _closed(exc: DependencyUnavailableError) -> bool:
    return exc.__cause__ is not None and closed_transport(exc.__cause__)


async def guarded_again(
    dependency: str, timeout_s: float, attempt: Callable[[], Awaitable[T]]
) -> T:
    """`attempt()` guarded; again, on another connection, while redis-py lets a closed one's
    error through untranslated (up to CLOSED_TRIES times). Seen on a cluster when a burst of
    requests opens connections and one failure makes redis-py close them all. Only for calls
    that are safe to repeat: a read, a submission (it appends its jobs once), a rate limit's
    charge (twice at worst, erring on the side of the limit)."""
    for tries in range(1, CLOSED_TRIES + 1):
        try:
            async with guarded(dependency, timeout_s):
                return await attempt()
        except DependencyUnavailableError as exc:
            if tries == CLOSED_TRIES or not _closed(exc):
                raise
            await asyncio.sleep(0.01 * tries)
    raise AssertionError("unreachable")  # pragma: no cover
