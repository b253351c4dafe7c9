"""Tenant rate limits, the HTTP side: which buckets a request counts against, and the header
fields that say where it stands.

A request counts against its tenant's requests bucket, its API key's own requests bucket and,
on a submission, its tenant's jobs bucket (a batch takes one unit per item); eventlog.ratelimit
charges them all or none. Every answer of a limited route carries the RateLimit-Policy and
RateLimit fields of draft-ietf-httpapi-ratelimit-headers (-11), one list member per bucket:

    RateLimit-Policy: "requests";q=100;w=2, "jobs";q=500;w=5
    RateLimit: "requests";r=37;t=1, "jobs";r=480;t=1

`q` is the burst, `w` the time an empty bucket takes to fill (burst / rate, rounded up), `r` the
whole units left after this request and `t` the seconds until the bucket is full again. A
refusal is a 429 (RateLimitedError) with Retry-After as well; as the draft asks, no `t` then
reaches past Retry-After. The jobs policy counts jobs, a unit the draft has no name for, so it
has no `qu` parameter.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import RateLimitedError
from eventlog.names import Names
from eventlog.ratelimit import Bucket, Decision, Rate

REQUESTS = "requests"
KEY_REQUESTS = "key-requests"
JOBS = "jobs"


def buckets_for(
    names: Names,
    tenant: str,
    key_id: str,
    tenant_requests: Rate | None,
    key_requests: Rate | None,
    jobs: Rate | None,
    job_count: int,
) -> list[Bucket]:
    """The buckets of one request, all in the tenant's hash tag: the tenant's requests and the
    API key's requests (a unit each), and the tenant's jobs (`job_count` units; only when it is
    above 0, i.e. on a submission). A limit whose rate is None is not counted."""
    buckets = []
    if tenant_requests is not None:
        buckets.append(Bucket(REQUESTS, names.rate(tenant, REQUESTS), tenant_requests, 1))
    if key_requests is not None:
        key = names.rate(tenant, f"key:{key_id}")
        buckets.append(Bucket(KEY_REQUESTS, key, key_requests, 1))
    if jobs is not None and job_count > 0:
        buckets.append(Bucket(JOBS, names.rate(tenant, JOBS), jobs, job_count))
    return buckets


def sf_string(text: str) -> str:
    """`text` as a Structured Field String (RFC 9651): printable ASCII in quotes, with `"` and
    `\\` escaped."""
    if not all(" " <= char <= "~" for char in text):
        raise ValueError(f"a Structured Field String holds printable ASCII only: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def header_fields(decision: Decision) -> dict[str, str]:
    """RateLimit-Policy and RateLimit for `decision`'s buckets, and Retry-After when it was
    refused for now (not when it can never pass: no wait helps then). Nothing without buckets."""
    if not decision.states:
        return {}
    waiting = not decision.allowed and not decision.never
    policies, limits = [], []
    for state in decision.states:
        name, rate = sf_string(state.bucket.name), state.bucket.rate
        reset_s = min(state.reset_s, decision.retry_after_s) if waiting else state.reset_s
        policies.append(f"{name};q={rate.burst};w={rate.window_s}")
        limits.append(f"{name};r={state.remaining};t={reset_s}")
    fields = {"RateLimit-Policy": ", ".join(policies), "RateLimit": ", ".join(limits)}
    if waiting:
        fields["Retry-After"] = str(decision.retry_after_s)
    return fields


def violated_policies(decision: Decision) -> list[str]:
    """The names of the buckets that refused the request: the draft's problem member
    `violated-policies`."""
    return [state.bucket.name for state in decision.refused]


def refusal_detail(decision: Decision) -> str:
    """What a refused request is told, in its problem details."""
    if decision.never:
        parts = []
        for state in decision.states:
            bucket = state.bucket
            if bucket.cost > bucket.rate.burst:
                units = "jobs" if bucket.name == JOBS else "units"
                parts.append(
                    f'{bucket.cost} {units} are more than the limit "{bucket.name}" ever lets '
                    f"through at once ({bucket.rate.burst})"
                )
        return "; ".join(parts) + ": send them in smaller parts."
    over = violated_policies(decision)
    limits = ", ".join(f'"{name}"' for name in over)
    noun = "limit" if len(over) == 1 else "limits"
    return f"Over the rate {noun} {limits}: retry in {decision.retry_after_s} s."


def enforce(decision: Decision) -> dict[str, str]:
    """The header fields of a request `decision` let through; RateLimitedError when it did
    not (api/problems.py answers 429 with them)."""
    if not decision.allowed:
        raise RateLimitedError(decision, refusal_detail(decision))
    return header_fields(decision)


# Where a request's decision waits for RateLimitHeaders (the ASGI scope's state, which is
# Starlette's request.state). A request is charged once, all its buckets in one step.
_STATE = "rate_limit_decision"


def answer_with(scope: Scope, decision: Decision) -> None:
    """Have the answer to the request of `scope` carry `decision`'s header fields."""
    scope.setdefault("state", {})[_STATE] = decision


class RateLimitHeaders:
    """Pure ASGI middleware: the RateLimit fields (and, on a refusal, Retry-After) of the
    request's decisions on its answer, whatever the answer is: a 2xx, a 404 or the 429 itself.
    A route's own Response objects (a batch's) get them too, which FastAPI's injected Response
    would not do."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get(_STATE)
                if decision is not None:
                    fields = header_fields(decision)
                    raw = [(k.lower().encode(), v.encode()) for k, v in fields.items()]
                    message = {**message, "headers": [*message.get("headers", []), *raw]}
            await send(message)

        await self.app(scope, receive, send_with_fields)
