"""Load generators: concurrent clients that submit and wait, or only submit."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import httpx

TEXTS = (
    "limited time offer, click now",
    "are we still on for lunch tomorrow?",
    "URGENT: your account is locked, verify your password here",
    "the build is green again, merging after lunch",
)


@dataclass
class Run:
    """What one load run saw from the client side."""

    wall_s: float = 0.0
    accepted: list[str] = field(default_factory=list)
    refused: int = 0
    submit_s: list[float] = field(default_factory=list)
    terminal_s: list[float] = field(default_factory=list)  # submit start -> terminal seen
    statuses: dict[str, int] = field(default_factory=dict)


async def _submit(client: httpx.AsyncClient, path: str, i: int, run: Run) -> str | None:
    began = time.perf_counter()
    reply = await client.post(path, json={"text": f"{TEXTS[i % len(TEXTS)]} #{i}"})
    run.submit_s.append(time.perf_counter() - began)
    if reply.status_code != 202:
        run.refused += 1
        return None
    job_id = str(reply.json().get("job_id") or reply.json().get("id"))
    run.accepted.append(job_id)
    return job_id


async def _wait(client: httpx.AsyncClient, job_id: str, poll_s: float) -> str:
    while True:
        body = (await client.get(f"/v1/jobs/{job_id}")).json()
        if body["status"] in ("succeeded", "failed"):
            return str(body["status"])
        await asyncio.sleep(poll_s)


async def _client(url: str, path: str, jobs: range, wait: bool, poll_s: float, run: Run) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for i in jobs:
            began = time.perf_counter()
            job_id = await _submit(client, path, i, run)
            if wait and job_id is not None:
                status = await _wait(client, job_id, poll_s)
                run.terminal_s.append(time.perf_counter() - began)
                run.statuses[status] = run.statuses.get(status, 0) + 1


async def _drive(url: str, path: str, clients: int, total: int, wait: bool, poll_s: float) -> Run:
    run = Run()
    share = [range(c, total, clients) for c in range(clients)]
    began = time.perf_counter()
    await asyncio.gather(*(_client(url, path, jobs, wait, poll_s, run) for jobs in share))
    run.wall_s = time.perf_counter() - began
    return run


def submit_and_wait(url: str, clients: int, total: int, poll_s: float = 0.005) -> Run:
    """Each client submits a job, polls it to a terminal state, then submits the next."""
    return asyncio.run(_drive(url, "/v1/inference", clients, total, True, poll_s))


def submit_only(url: str, path: str, clients: int, total: int) -> Run:
    """Each client submits as fast as answers come back."""
    return asyncio.run(_drive(url, path, clients, total, False, 0.0))
