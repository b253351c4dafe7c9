"""What one load client does: submit and wait, only submit, or submit batches.

A `Plan` says what a load process runs (it is pickled to the process); each of its clients has
one keep-alive connection and works through its share of the job numbers one request at a time,
pausing `think_s` after each job, until they are done or the run is told to stop (bench.loadgen:
a plan with more numbers than it will use then runs for as long as its caller wants).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from bench.http import Connection, ProtocolError, Reply
from bench.tally import TERMINAL, Tally

TEXTS = (
    "limited time offer, click now",
    "are we still on for lunch tomorrow?",
    "URGENT: your account is locked, verify your password here",
    "the build is green again, merging after lunch",
)
SUBMIT_PATH = "/v1/inference"
BATCH_PATH = "/v1/inference/batch"

Kind = Literal["wait", "submit", "batch"]
# poll: GET until terminal; get: GET ?wait=S; prefer: POST with Prefer: wait=S, then GET ?wait=S.
WaitStyle = Literal["poll", "get", "prefer"]


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    """The Authorization header of an API key; none without a key (the reference endpoint)."""
    return (("Authorization", f"Bearer {key}"),) if key else ()


@dataclass(frozen=True)
class Plan:
    url: str
    kind: Kind
    numbers: range  # the job numbers this process submits (batch: item numbers)
    clients: int = 1
    path: str = SUBMIT_PATH
    wait: WaitStyle = "get"
    wait_s: int = 10
    poll_s: float = 0.005
    batch_size: int = 1000
    timeout_s: float = 30.0  # of one request, on top of the wait it asks for
    job_timeout_s: float = 120.0  # how long a client waits for one job before giving up
    keep_ids: bool = True  # remember accepted job ids, to look for lost jobs afterwards
    think_s: float = 0.0  # a waiting client's pause after each job (an interactive user)
    api_key: str = field(default="", repr=False)  # sent with every request (none: no header)

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """What every request of the plan sends besides its own headers."""
        return bearer(self.api_key)


def text(number: int) -> str:
    return f"{TEXTS[number % len(TEXTS)]} #{number}"


def job_body(number: int) -> bytes:
    return json.dumps({"text": text(number)}).encode()


def batch_body(numbers: range) -> bytes:
    return json.dumps({"items": [{"text": text(n)} for n in numbers]}).encode()


async def send(
    conn: Connection,
    tally: Tally,
    method: str,
    target: str,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    timeout_s: float | None = None,
) -> Reply | None:
    """The reply, or None after counting why there was none."""
    tally.requests += 1
    try:
        return await conn.request(method, target, body, headers, timeout_s)
    except TimeoutError:
        tally.timeouts += 1
    except (OSError, EOFError, ProtocolError, asyncio.IncompleteReadError) as exc:
        tally.errors[type(exc).__name__] += 1
    except asyncio.LimitOverrunError:
        tally.errors["LimitOverrunError"] += 1
    return None


def json_body(reply: Reply, tally: Tally) -> dict[str, Any] | None:
    """The answer's JSON object; None, counted as an error, when it is not one."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        tally.errors["not a JSON object"] += 1
        return None
    return body


def accepted_job(reply: Reply, tally: Tally, keep_id: bool) -> tuple[str, str] | None:
    """Job id and status of a submission's answer; None (counted as refused) for non-2xx."""
    if not 200 <= reply.status < 300:
        tally.refused[reply.status] += 1
        return None
    body = json_body(reply, tally)
    if body is None:
        return None
    tally.accepted_count += 1
    if reply.headers.get("idempotent-replayed") == "true":
        tally.replayed += 1
    job_id = str(body.get("job_id", ""))
    if keep_id and job_id:
        tally.accepted.append(job_id)
    return job_id, str(body.get("status", ""))


async def until_terminal(conn: Connection, plan: Plan, job_id: str, tally: Tally) -> str | None:
    """Read the job until it is terminal: its final status, or None when the client gave up."""
    long_poll = plan.wait != "poll"
    target = f"/v1/jobs/{job_id}" + (f"?wait={plan.wait_s}" if long_poll else "")
    deadline = time.monotonic() + plan.job_timeout_s
    while time.monotonic() < deadline:
        began = time.monotonic()
        reply = await send(conn, tally, "GET", target, timeout_s=plan.wait_s + plan.timeout_s)
        if reply is not None and reply.status == 200:
            body = json_body(reply, tally) or {}
            if (status := str(body.get("status"))) in TERMINAL:
                return status
            if long_poll and time.monotonic() - began >= plan.wait_s / 2:
                continue  # the wait ran out: ask again at once (a quick answer did not wait)
        elif reply is not None:  # refused counts submissions; a failed read is an error
            tally.errors[f"GET answered {reply.status}"] += 1
        await asyncio.sleep(plan.poll_s)
    return None


async def wait_client(
    plan: Plan, conn: Connection, numbers: range, tally: Tally, stop: asyncio.Event | None = None
) -> None:
    headers = (("Prefer", f"wait={plan.wait_s}"),) if plan.wait == "prefer" else ()
    post_timeout_s = plan.timeout_s + (plan.wait_s if headers else 0)
    for i, number in enumerate(numbers):
        if plan.think_s and i:
            await asyncio.sleep(plan.think_s)
        if stop is not None and stop.is_set():
            return
        await wait_for_one(plan, conn, number, headers, post_timeout_s, tally)


async def wait_for_one(
    plan: Plan,
    conn: Connection,
    number: int,
    headers: tuple[tuple[str, str], ...],
    post_timeout_s: float,
    tally: Tally,
) -> None:
    """Submit one job and wait until it is terminal, as the plan says."""
    began, began_at = time.perf_counter(), time.time()
    body = job_body(number)
    reply = await send(conn, tally, "POST", plan.path, body, headers, post_timeout_s)
    if reply is None:
        return
    tally.submit_s.append(time.perf_counter() - began)
    job = accepted_job(reply, tally, plan.keep_ids)
    if job is None:
        return
    if headers and job[1] not in TERMINAL:
        tally.waits_expired += 1
    status = job[1] if job[1] in TERMINAL else await until_terminal(conn, plan, job[0], tally)
    if status is None:
        tally.unfinished += 1
        return
    tally.terminal_s.append(time.perf_counter() - began)
    tally.terminal_at.append(began_at)
    tally.terminal_ids.append(job[0])
    tally.statuses[status] += 1


async def submit_client(
    plan: Plan, conn: Connection, numbers: range, tally: Tally, stop: asyncio.Event | None = None
) -> None:
    for number in numbers:
        if stop is not None and stop.is_set():
            return
        began = time.perf_counter()
        reply = await send(conn, tally, "POST", plan.path, job_body(number))
        if reply is None:
            continue
        tally.submit_s.append(time.perf_counter() - began)
        accepted_job(reply, tally, plan.keep_ids)


def count_batch(reply: Reply, tally: Tally, keep_ids: bool) -> None:
    if reply.status != 202:
        tally.refused[reply.status] += 1
        return
    body = json_body(reply, tally)
    if body is None:
        return
    tally.accepted_count += int(body.get("accepted", 0))
    tally.replayed += int(body.get("replayed", 0))
    tally.rejected += int(body.get("rejected", 0))
    if keep_ids:
        items = body.get("items") or []
        tally.accepted += [i["job_id"] for i in items if i.get("status") == "accepted"]


async def batch_client(
    plan: Plan,
    conn: Connection,
    batches: list[range],
    tally: Tally,
    stop: asyncio.Event | None = None,
) -> None:
    for numbers in batches:
        if stop is not None and stop.is_set():
            return
        began = time.perf_counter()
        reply = await send(conn, tally, "POST", plan.path, batch_body(numbers))
        if reply is None:
            continue
        tally.submit_s.append(time.perf_counter() - began)
        count_batch(reply, tally, plan.keep_ids)


def job_shares(plan: Plan) -> list[range]:
    """Each client's part of the plan's job numbers, interleaved."""
    return [plan.numbers[c :: plan.clients] for c in range(plan.clients)]


def batch_shares(plan: Plan) -> list[list[range]]:
    """Each client's batches of the plan's item numbers."""
    size, numbers = plan.batch_size, plan.numbers
    batches = [numbers[i : i + size] for i in range(0, len(numbers), size)]
    return [batches[c :: plan.clients] for c in range(plan.clients)]


async def run_clients(
    plan: Plan, conns: list[Connection], tally: Tally, stop: asyncio.Event | None = None
) -> None:
    """Run every client of the plan on its own connection until all are done, or until `stop`
    is set (each client ends the request it is in first)."""
    if plan.kind == "batch":
        pairs = zip(conns, batch_shares(plan), strict=True)
        await asyncio.gather(*(batch_client(plan, c, b, tally, stop) for c, b in pairs))
        return
    client = wait_client if plan.kind == "wait" else submit_client
    jobs = zip(conns, job_shares(plan), strict=True)
    await asyncio.gather(*(client(plan, c, numbers, tally, stop) for c, numbers in jobs))
