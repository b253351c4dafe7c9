"""Rate limits on a real Redis (a cluster too): GCRA over several buckets, all or nothing, on
the server's clock, exact under concurrency from many clients."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from eventlog.connection import connect_async
from eventlog.names import Names
from eventlog.ratelimit import Bucket, Decision, Rate, RateLimiter

T = TypeVar("T")
TENANT = "acme"
SLOW = Rate(per_s=0.01, burst=10)  # a unit back every 100 s: nothing refills during a test


def with_limiter(
    redis_url: str, redis_cluster: bool, scenario: Callable[[RateLimiter], Awaitable[T]]
) -> T:
    """Run `scenario` with a limiter on a client of its own (as one API process has)."""

    async def main() -> T:
        client = connect_async(redis_url, redis_cluster)
        try:
            return await scenario(RateLimiter(client))
        finally:
            await client.aclose()

    return asyncio.run(main())


def bucket(names: Names, name: str, rate: Rate, cost: int = 1, tenant: str = TENANT) -> Bucket:
    return Bucket(name, names.rate(tenant, name), rate, cost)


def remaining(decision: Decision) -> list[int]:
    return [state.remaining for state in decision.states]


def test_a_burst_passes_then_the_next_is_refused_with_its_wait(
    redis_url, redis_cluster, names: Names, redis_client
):
    limit = [bucket(names, "requests", Rate(per_s=0.5, burst=3))]

    async def scenario(limiter: RateLimiter) -> list[Decision]:
        return [await limiter.acquire(limit) for _ in range(4)]

    decisions = with_limiter(redis_url, redis_cluster, scenario)
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [remaining(d) for d in decisions] == [[2], [1], [0], [0]]
    assert [d.states[0].reset_s for d in decisions] == [2, 4, 6, 6]
    refused = decisions[3]
    assert refused.retry_after_s == 2 and not refused.never  # one unit back: 1 / 0.5 s
    assert refused.states[0].refused


def test_units_come_back_at_the_rate(redis_url, redis_cluster, names: Names, redis_client):
    limit = [bucket(names, "requests", Rate(per_s=8, burst=2))]  # a unit back every 125 ms

    async def scenario(limiter: RateLimiter) -> None:
        assert [(await limiter.acquire(limit)).allowed for _ in range(3)] == [True, True, False]
        await asyncio.sleep(0.15)  # one back; the next only 250 ms after the first
        assert (await limiter.acquire(limit)).allowed
        assert not (await limiter.acquire(limit)).allowed
        await asyncio.sleep(0.3)  # both back
        both = [await limiter.acquire(limit) for _ in range(3)]
        assert [d.allowed for d in both] == [True, True, False]
        assert both[2].retry_after_s == 1  # 125 ms, rounded up to a whole second

    with_limiter(redis_url, redis_cluster, scenario)


def test_a_refusing_bucket_charges_none_of_the_others(
    redis_url, redis_cluster, names: Names, redis_client
):
    requests = bucket(names, "requests", SLOW)
    jobs = Rate(per_s=0.01, burst=5)

    async def scenario(limiter: RateLimiter) -> None:
        first = await limiter.acquire([requests, bucket(names, "jobs", jobs, cost=3)])
        assert first.allowed and remaining(first) == [9, 2]
        before = redis_client.get(requests.key)
        second = await limiter.acquire([requests, bucket(names, "jobs", jobs, cost=3)])
        assert not second.allowed
        assert [s.refused for s in second.states] == [False, True]
        assert remaining(second) == [9, 2]  # what is there: nothing was charged
        assert redis_client.get(requests.key) == before
        look = await limiter.acquire([bucket(names, "requests", SLOW, cost=0)])
        assert look.allowed and remaining(look) == [9]
        # Refused the other way round: a full requests bucket keeps the jobs bucket as it was.
        for _ in range(9):
            assert (await limiter.acquire([requests])).allowed
        third = await limiter.acquire([requests, bucket(names, "jobs", jobs, cost=2)])
        assert not third.allowed and [s.refused for s in third.states] == [True, False]
        assert remaining(third) == [0, 2]
        last = await limiter.acquire([bucket(names, "jobs", jobs, cost=2)])
        assert last.allowed and remaining(last) == [0]

    with_limiter(redis_url, redis_cluster, scenario)


def test_a_batch_costs_one_unit_per_item(redis_url, redis_cluster, names: Names, redis_client):
    async def scenario(limiter: RateLimiter) -> list[Decision]:
        return [
            await limiter.acquire([bucket(names, "jobs", SLOW, cost)]) for cost in (4, 4, 4, 2, 1)
        ]

    decisions = with_limiter(redis_url, redis_cluster, scenario)
    assert [d.allowed for d in decisions] == [True, True, False, True, False]
    assert [remaining(d) for d in decisions] == [[6], [2], [2], [0], [0]]
    assert decisions[2].retry_after_s > 100  # two more units: 200 s at 0.01 a second


def test_a_cost_above_the_burst_never_passes_and_charges_nothing(
    redis_url, redis_cluster, names: Names, redis_client
):
    requests, jobs = bucket(names, "requests", SLOW), Rate(per_s=100, burst=10)

    async def scenario(limiter: RateLimiter) -> Decision:
        return await limiter.acquire([requests, bucket(names, "jobs", jobs, cost=11)])

    decision = with_limiter(redis_url, redis_cluster, scenario)
    assert not decision.allowed and decision.never and decision.retry_after_s == 0
    assert [s.refused for s in decision.states] == [False, True]
    assert remaining(decision) == [10, 10]
    assert redis_client.exists(requests.key, names.rate(TENANT, "jobs")) == 0


def test_64_concurrent_requests_against_a_burst_of_10_let_exactly_10_through(
    redis_url, redis_cluster, names: Names, redis_client
):
    limit = [bucket(names, "requests", SLOW), bucket(names, "key-requests", Rate(0.01, 50))]

    async def scenario(limiter: RateLimiter) -> list[Decision]:
        return await asyncio.gather(*(limiter.acquire(limit) for _ in range(64)))

    decisions = with_limiter(redis_url, redis_cluster, scenario)
    assert sum(d.allowed for d in decisions) == 10
    assert sorted(d.states[0].remaining for d in decisions if d.allowed) == list(range(10))
    # The key's bucket was charged for the 10 that passed only.
    look = [bucket(names, "key-requests", Rate(0.01, 50), cost=0)]
    assert remaining(with_limiter(redis_url, redis_cluster, lambda lim: lim.acquire(look))) == [40]


def test_64_requests_from_8_processes_at_once_let_exactly_10_through(
    redis_url, redis_cluster, names: Names, redis_client
):
    """Eight clients, each on a thread and event loop of its own, as eight API processes."""
    limit = [bucket(names, "requests", SLOW)]
    start = threading.Barrier(8)
    allowed: list[int] = []
    errors: list[BaseException] = []

    async def eight(limiter: RateLimiter) -> int:
        await limiter.acquire([bucket(names, "warm-up", SLOW, cost=0)])  # connected first
        start.wait()
        decisions = await asyncio.gather(*(limiter.acquire(limit) for _ in range(8)))
        return sum(d.allowed for d in decisions)

    def process() -> None:
        try:
            allowed.append(with_limiter(redis_url, redis_cluster, eight))
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=process) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(allowed) == 8 and sum(allowed) == 10


def test_a_bucket_expires_when_it_is_full_again(
    redis_url, redis_cluster, names: Names, redis_client
):
    rate = Rate(per_s=5, burst=5)
    limit = bucket(names, "requests", rate, cost=3)  # full again in 600 ms

    async def scenario(limiter: RateLimiter) -> None:
        assert (await limiter.acquire([limit])).allowed
        assert 0 < redis_client.pttl(limit.key) <= 600
        await limiter.acquire([bucket(names, "requests", rate, cost=0)])
        assert 0 < redis_client.pttl(limit.key) <= 600  # looking leaves it as it was
        deadline = time.monotonic() + 3
        while redis_client.exists(limit.key) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not redis_client.exists(limit.key)
        full = await limiter.acquire([bucket(names, "requests", rate, cost=0)])
        assert remaining(full) == [5] and full.states[0].reset_s == 0

    with_limiter(redis_url, redis_cluster, scenario)


def test_looking_writes_nothing_and_no_buckets_ask_nothing(
    redis_url, redis_cluster, names: Names, redis_client
):
    look = bucket(names, "requests", SLOW, cost=0)

    async def scenario(limiter: RateLimiter) -> tuple[Decision, Decision]:
        return await limiter.acquire([look]), await limiter.acquire([])

    looked, nothing = with_limiter(redis_url, redis_cluster, scenario)
    assert looked.allowed and remaining(looked) == [10] and looked.states[0].reset_s == 0
    assert not redis_client.exists(look.key)
    assert nothing.allowed and nothing.states == ()


def test_tenants_have_buckets_of_their_own(redis_url, redis_cluster, names: Names, redis_client):
    rate = Rate(per_s=0.01, burst=1)

    async def scenario(limiter: RateLimiter) -> list[bool]:
        return [
            (await limiter.acquire([bucket(names, "requests", rate, tenant=t)])).allowed
            for t in ("acme", "acme", "globex")
        ]

    assert with_limiter(redis_url, redis_cluster, scenario) == [True, False, True]


def test_a_call_sent_again_with_its_receipt_is_charged_once(redis_url, redis_cluster, names):
    buckets = [Bucket("requests", names.rate("acme", "requests"), Rate(0.001, 2), 1)]

    async def scenario(limiter: RateLimiter) -> list[Decision]:
        receipt = names.rate_receipt("acme", "request-1")
        first = await limiter.acquire(buckets, receipt)
        again = await limiter.acquire(buckets, receipt)  # as redis-py resending it
        other = await limiter.acquire(buckets, names.rate_receipt("acme", "request-2"))
        last = await limiter.acquire(buckets, names.rate_receipt("acme", "request-3"))
        return [first, again, other, last]

    first, again, other, last = with_limiter(redis_url, redis_cluster, scenario)
    assert first.allowed and again == first  # the same decision, nothing charged again
    assert other.allowed and other.states[0].remaining == 0
    assert not last.allowed
