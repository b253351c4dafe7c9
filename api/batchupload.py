"""POST /v1/batches: a JSON Lines file accepted a chunk at a time, as it arrives.

Each chunk of lines (api.batchfile) is judged and accepted as a batch of POST
/v1/inference/batch is (api.submission.accept_batch, one Redis command per partition, its jobs
counted in the batch's record), so a 100,000-line file is never held whole: the body is read
on only when the chunk before is on the log. Each chunk is charged to the tenant's rate limits
as one request of its jobs, which is what the same jobs sent as batches would cost. A chunk
the limits refuse for now waits until they let it through: the file is taken at the tenant's
rate, the sender held back by TCP meanwhile, never refused in the middle (a refusal there
would leave half a file and a retry that pays for the first half again). A chunk above the
jobs burst could never pass, so chunks are no larger than it.

The answer counts every line and lists the bad ones by number, up to BAD_LINES_SHOWN: a file of
100,000 bad lines is not answered with 100,000 problem details.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from api import submission
from api.auth import Principal
from api.batchfile import BadLine, FileLimits, Overflow, chunks
from api.deps import Services, charge
from api.errors import RateLimitedError

log = logging.getLogger(__name__)

BAD_LINES_SHOWN = 1000


@dataclass
class FileOutcome:
    """What accepting a file did so far."""

    batch_id: str
    lines: int = 0
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("accepted", "replayed", "rejected"), 0)
    )
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    bad_lines_omitted: int = 0
    # Bad lines that the queue cap refused, so that a file refused by it alone says so.
    queue_full: int = 0
    overflow: Overflow | None = None

    def add(self, bad: list[BadLine], answers: list[submission.Answer]) -> None:
        """A chunk's bad lines and its items' answers."""
        rejected = [answer for answer in answers if answer["status"] == "rejected"]
        numbered = [(b.number, b.custom_id, b.error) for b in bad]
        numbered += [(a["index"], a["custom_id"], a["error"]) for a in rejected]
        numbered.sort(key=lambda line: line[0])
        lines = [{"line": n, "custom_id": c, "error": e} for n, c, e in numbered]
        self.lines += len(bad) + len(answers)
        for answer in answers:
            self.counts[answer["status"]] += 1
        self.counts["rejected"] += len(bad)
        self.queue_full += sum(a["error"]["type"].endswith(":queue-full") for a in rejected)
        room = max(0, BAD_LINES_SHOWN - len(self.bad_lines))
        self.bad_lines += lines[:room]
        self.bad_lines_omitted += len(lines[room:])

    @property
    def jobs(self) -> int:
        """Lines that have their job: made now or by an earlier sending."""
        return self.counts["accepted"] + self.counts["replayed"]

    def body(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "lines": self.lines,
            **self.counts,
            "bad_lines": self.bad_lines,
            "bad_lines_omitted": self.bad_lines_omitted,
        }


async def accept_file(
    svc: Services, request: Request, principal: Principal, context: submission.BatchContext
) -> FileOutcome:
    """Read the request's body as a file of lines and accept them as `context`'s batch; stops
    early at the file's limits (`FileOutcome.overflow`)."""
    settings = svc.settings
    limits = FileLimits(
        max_lines=settings.batch_file_max_lines,
        # A line is one job: as long as the body of POST /v1/inference may be.
        max_line_bytes=settings.max_body_bytes,
        max_bytes=settings.batch_file_max_bytes,
    )
    outcome = FileOutcome(context.batch_id)
    async for chunk in chunks(request.stream(), limits, await _chunk_lines(svc, context.tenant)):
        answers: list[submission.Answer] = []
        if chunk.values:
            await _charge_when_allowed(svc, request, principal, len(chunk.values))
            _counts, answers = await submission.accept_batch(
                svc, context, chunk.values, chunk.numbers
            )
        outcome.add(chunk.bad, answers)
        outcome.overflow = chunk.overflow
    return outcome


async def _chunk_lines(svc: Services, tenant: str) -> int:
    """Lines per chunk: a batch's most items, and no more than the tenant's jobs burst."""
    limits = await svc.tenants.limits(tenant)
    lines = svc.settings.batch_max_items
    return min(lines, limits.jobs.burst) if limits.jobs is not None else lines


async def _charge_when_allowed(
    svc: Services, request: Request, principal: Principal, jobs: int
) -> None:
    """Charge a chunk of `jobs` jobs, waiting as long as the limits say while they refuse it;
    RateLimitedError only when no wait would help."""
    while True:
        try:
            await charge(svc, request, principal, jobs=jobs)
            return
        except RateLimitedError as exc:
            if exc.decision.never:
                raise
            await asyncio.sleep(exc.decision.retry_after_s)
