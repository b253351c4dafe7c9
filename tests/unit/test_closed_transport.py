"""redis-py 8.1 lets a write on a connection the event loop closed escape untranslated
(redis/redis-py#4287): the API must answer it as Redis unavailable, never a 500, and send a
submission once more (safe: it appends its jobs once)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from api.errors import DependencyUnavailableError
from api.guard import CLOSED_TRIES
from api.logclient import LogClient
from eventlog.connection import closed_transport
from eventlog.names import Names
from eventlog.submission import Retention, Submission

UVLOOP = RuntimeError(
    "unable to perform operation on <TCPTransport closed=True reading=False 0x5>; "
    "the handler is closed"
)


@pytest.mark.parametrize(
    "exc",
    [
        UVLOOP,
        AttributeError("'NoneType' object has no attribute 'writelines'"),
        TypeError("'NoneType' object is not callable"),
    ],
)
def test_the_untranslated_errors_are_recognised(exc):
    assert closed_transport(exc)


@pytest.mark.parametrize(
    "exc", [RuntimeError("something else"), TypeError("bad argument"), ValueError("x")]
)
def test_other_errors_are_not(exc):
    assert not closed_transport(exc)


class FlakySubmitter:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    async def submit(self, *_: object) -> Submission:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return Submission("job", created=True)


def log_with(submitter: FlakySubmitter) -> LogClient:
    client = aioredis.Redis.from_url("redis://127.0.0.1:9/0")
    log = LogClient(client, Names(), Retention(60, 60), timeout_s=1)
    log._submitter = submitter  # type: ignore[assignment]
    return log


def test_a_submission_on_a_closed_connection_is_sent_once_more():
    submitter = FlakySubmitter([UVLOOP])
    result = asyncio.run(log_with(submitter).submit(None, None, ""))  # type: ignore[arg-type]
    assert result == Submission("job", created=True) and submitter.calls == 2


def test_always_closed_is_redis_unavailable_not_a_500():
    submitter = FlakySubmitter([UVLOOP] * CLOSED_TRIES)
    with pytest.raises(DependencyUnavailableError, match="connection closed"):
        asyncio.run(log_with(submitter).submit(None, None, ""))  # type: ignore[arg-type]
    assert submitter.calls == CLOSED_TRIES


def test_a_real_bug_is_not_hidden():
    submitter = FlakySubmitter([TypeError("unsupported operand")])
    with pytest.raises(TypeError, match="unsupported operand"):
        asyncio.run(log_with(submitter).submit(None, None, ""))  # type: ignore[arg-type]
    assert submitter.calls == 1
