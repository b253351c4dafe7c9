"""The API's subscription to terminal jobs against a real Redis: wakes, reconnects, outages."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis

from api.waiters import TerminalListener, Waiters
from eventlog.names import Names

BOUND_S = 10.0  # how long a test waits for what must happen; never reached when it works


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(BOUND_S):
        while not condition():
            await asyncio.sleep(0.01)


def kill_listener_connection(client: redis.Redis, channel: str) -> None:
    """Drop this test's listener connection only, as a Redis restart would."""
    ids = [c["id"] for c in client.client_list() if c.get("name") == f"{channel}:listener"]
    assert len(ids) == 1
    client.client_kill_filter(_id=ids[0])


def run_listener(url: str, channel: str, scenario) -> None:
    async def main() -> None:
        waiters = Waiters()
        listener = TerminalListener(url, False, channel, waiters, 2.0)
        listener.start()
        try:
            await scenario(waiters, listener)
        finally:
            await listener.stop()

    asyncio.run(main())


def test_an_announcement_wakes_the_watches_of_its_jobs(redis_url, names: Names, redis_client):
    channel = names.terminal

    async def scenario(waiters: Waiters, listener: TerminalListener) -> None:
        await until(lambda: listener.subscribed)
        with waiters.watch("a") as a, waiters.watch("b") as b:
            redis_client.publish(channel, "a c")
            assert await a.wait(deadline_in(BOUND_S))
            assert not await b.wait(deadline_in(0.2))

    run_listener(redis_url, channel, scenario)


def test_after_a_lost_connection_every_waiter_is_woken_and_wakes_still_come(
    redis_url, names: Names, redis_client
):
    channel = names.terminal

    async def scenario(waiters: Waiters, listener: TerminalListener) -> None:
        await until(lambda: listener.subscribed)
        with waiters.watch("a") as a:
            kill_listener_connection(redis_client, channel)
            # Nothing was published: the wake-up says "read again, you may have missed one".
            assert await a.wait(deadline_in(BOUND_S))
            assert listener.subscribed
            redis_client.publish(channel, "a")
            assert await a.wait(deadline_in(BOUND_S))

    run_listener(redis_url, channel, scenario)


def test_without_redis_waits_run_out_and_the_listener_stops_cleanly(names: Names):
    async def scenario(waiters: Waiters, listener: TerminalListener) -> None:
        with waiters.watch("a") as a:
            assert not await a.wait(deadline_in(0.3))
        assert not listener.subscribed

    # Nothing listens on port 1: every connection attempt is refused.
    run_listener("redis://127.0.0.1:1/0", names.terminal, scenario)
