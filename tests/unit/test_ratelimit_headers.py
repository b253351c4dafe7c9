"""Rate limits without Redis: the RateLimit header fields, the window, refusals, the buckets of
a request, and the script's reply read into a decision."""

from __future__ import annotations

import pytest

from api.errors import RateLimitedError
from api.ratelimits import (
    JOBS,
    KEY_REQUESTS,
    REQUESTS,
    buckets_for,
    enforce,
    header_fields,
    refusal_detail,
    sf_string,
    violated_policies,
)
from eventlog.names import Names
from eventlog.ratelimit import (
    ALLOWED,
    Bucket,
    BucketState,
    Decision,
    Rate,
    hash_tag,
    parse_decision,
    rate_limit_args,
)

NAMES = Names("t")


def bucket(name: str = "burst", per_s: float = 100, burst: int = 100, cost: int = 1) -> Bucket:
    return Bucket(name, NAMES.rate("acme", name), Rate(per_s, burst), cost)


def state(b: Bucket, remaining: int, reset_s: int, refused: bool = False) -> BucketState:
    return BucketState(b, remaining, reset_s, refused)


def test_one_policy_reads_as_the_drafts_example():
    decision = Decision(True, (state(bucket(), 37, 1),), 0)
    assert header_fields(decision) == {
        "RateLimit-Policy": '"burst";q=100;w=1',
        "RateLimit": '"burst";r=37;t=1',
    }


def test_several_policies_are_one_list_in_the_buckets_order():
    a, b = bucket(REQUESTS, per_s=10, burst=20), bucket(JOBS, per_s=50, burst=500, cost=7)
    fields = header_fields(Decision(True, (state(a, 19, 1), state(b, 493, 1)), 0))
    assert fields["RateLimit-Policy"] == '"requests";q=20;w=2, "jobs";q=500;w=10'
    assert fields["RateLimit"] == '"requests";r=19;t=1, "jobs";r=493;t=1'
    assert "Retry-After" not in fields


@pytest.mark.parametrize(
    ("per_s", "burst", "window"),
    [
        (100, 100, 1),
        (10, 20, 2),
        (20, 1, 1),  # under a second: the window is never 0
        (3, 10, 4),  # 3.33 s, rounded up
        (0.3, 3, 10),  # 3 / 0.3 is 10.000000000000002 in floats: still 10
        (0.1, 10, 100),
        (1 / 60, 5, 300),
    ],
)
def test_the_window_is_the_time_an_empty_bucket_takes_to_fill_rounded_up(per_s, burst, window):
    assert Rate(per_s, burst).window_s == window
    fields = header_fields(Decision(True, (state(bucket(per_s=per_s, burst=burst), 0, 0),), 0))
    assert fields["RateLimit-Policy"] == f'"burst";q={burst};w={window}'


def test_a_refusal_adds_retry_after_and_no_reset_reaches_past_it():
    # The draft: Retry-After SHOULD NOT be earlier than the end of any effective window.
    requests = bucket(REQUESTS, per_s=1, burst=10)
    jobs = bucket(JOBS, per_s=1, burst=10, cost=4)
    decision = Decision(False, (state(requests, 9, 8), state(jobs, 2, 8, refused=True)), 2)
    fields = header_fields(decision)
    assert fields["Retry-After"] == "2"
    assert fields["RateLimit"] == '"requests";r=9;t=2, "jobs";r=2;t=2'
    assert violated_policies(decision) == [JOBS]
    assert refusal_detail(decision) == 'Over the rate limit "jobs": retry in 2 s.'


def test_a_request_that_can_never_pass_has_no_retry_after_and_says_to_split():
    jobs = bucket(JOBS, per_s=5, burst=10, cost=25)
    decision = Decision(False, (state(jobs, 10, 0, refused=True),), 0, never=True)
    fields = header_fields(decision)
    assert "Retry-After" not in fields
    assert fields["RateLimit"] == '"jobs";r=10;t=0'
    detail = refusal_detail(decision)
    assert "25 jobs" in detail and "(10)" in detail and "smaller parts" in detail


def test_enforce_gives_the_fields_or_raises_with_the_decision():
    ok = Decision(True, (state(bucket(), 5, 1),), 0)
    assert enforce(ok) == header_fields(ok)
    assert enforce(ALLOWED) == {}
    refused = Decision(False, (state(bucket(), 0, 1, refused=True),), 1)
    with pytest.raises(RateLimitedError) as raised:
        enforce(refused)
    assert raised.value.decision is refused
    assert raised.value.detail == 'Over the rate limit "burst": retry in 1 s.'


def test_no_buckets_no_fields():
    assert header_fields(ALLOWED) == {}


def test_policy_names_are_structured_field_strings():
    assert sf_string("key-requests") == '"key-requests"'
    assert sf_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        sf_string("caf\u00e9")
    with pytest.raises(ValueError):
        sf_string("a\nb")


def test_a_request_counts_against_the_tenants_and_its_keys_requests_and_on_submit_jobs():
    rate = Rate(10, 20)
    buckets = buckets_for(NAMES, "acme", "k1", rate, Rate(5, 5), Rate(50, 500), 3)
    assert [(b.name, b.key, b.cost) for b in buckets] == [
        (REQUESTS, "{t:t:acme}:rate:requests", 1),
        (KEY_REQUESTS, "{t:t:acme}:rate:key:k1", 1),
        (JOBS, "{t:t:acme}:rate:jobs", 3),
    ]
    assert {hash_tag(b.key) for b in buckets} == {"t:t:acme"}
    reads = buckets_for(NAMES, "acme", "k1", rate, rate, Rate(50, 500), 0)
    assert [b.name for b in reads] == [REQUESTS, KEY_REQUESTS]
    assert [b.name for b in buckets_for(NAMES, "acme", "k1", None, rate, None, 9)] == [KEY_REQUESTS]
    assert buckets_for(NAMES, "acme", "k1", None, None, None, 9) == []


def test_rates_and_costs_are_checked():
    for per_s in (0, -1, float("nan"), 1e9):
        with pytest.raises(ValueError):
            Rate(per_s, 1)
    with pytest.raises(ValueError):
        Rate(1, 0)
    with pytest.raises(ValueError):
        bucket(cost=-1)


def test_the_buckets_of_one_call_share_one_hash_tag():
    a = bucket()
    other = Bucket("x", NAMES.rate("other", "x"), Rate(1, 1), 1)
    with pytest.raises(ValueError):
        rate_limit_args([a, other])
    keys, argv = rate_limit_args([a, bucket(JOBS, per_s=4, burst=8, cost=3)])
    # Without a receipt, the first bucket's key stands in its place, untouched.
    assert keys == [a.key, a.key, NAMES.rate("acme", JOBS)]
    assert argv == ["0", "10000.0", "100", "1", "250000.0", "8", "3"]
    receipt = NAMES.rate_receipt("acme", "r1")
    keys, argv = rate_limit_args([a], receipt)
    assert keys == [receipt, a.key] and argv[0] == "60000"
    with pytest.raises(ValueError):
        rate_limit_args([a], NAMES.rate_receipt("other", "r1"))


def test_hash_tags_follow_the_cluster_rule():
    assert hash_tag("{a}:b") == "a"
    assert hash_tag("x{a}{b}") == "a"
    assert hash_tag("{}a") == "{}a"
    assert hash_tag("plain") == "plain"


def test_replies_read_into_decisions():
    a, b = bucket("a"), bucket("b", cost=3)
    passed = parse_decision([a, b], [1, 0, 99, 10_000, 0, 97, 30_000, 0])
    assert passed == Decision(True, (state(a, 99, 1), state(b, 97, 1)), 0)
    refused = parse_decision([a, b], [0, 1_000_001, 99, 10_000, 0, 2, 2_000_000, 1])
    assert not refused.allowed and not refused.never
    assert refused.retry_after_s == 2  # rounded up
    assert refused.refused == (state(b, 2, 2, refused=True),)
    soon = parse_decision([a], [0, 10, 0, 10, 1])
    assert soon.retry_after_s == 1  # never 0 when refused
    never = parse_decision([a, b], [0, -1, 99, 10_000, 0, 2, 0, 2])
    assert never.never and never.retry_after_s == 0 and not never.allowed
    with pytest.raises(ValueError):
        parse_decision([a, b], [1, 0, 99, 10_000, 0])
