"""Batches as objects: what a batch file's line is, what POST /v1/batches answers, and a batch's
summary (its jobs counted by status, its status) and result lines, as GET /v1/batches/{id}
and its results show them.

A batch is known from its record in Redis (eventlog.batches: its tenant, creation and the jobs
accepted so far) and from its jobs in the projection. Jobs accepted and not projected yet are
counted as queued: the record's count less the rows projected.

A batch's status:
- `in_progress`: some of its jobs are not terminal;
- `cancelling`: it was cancelled (POST /v1/batches/{id}/cancel) and some jobs are not
  terminal yet;
- `completed`: every job is terminal (succeeded, failed, or cancelled one by one);
- `cancelled`: every job is terminal, and the batch was cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.auth import Principal
from api.deps import Services
from api.errors import DependencyUnavailableError
from api.guard import guarded_again
from api.schemas import (
    EXAMPLE_JOB_ID,
    MAX_CUSTOM_ID_CHARS,
    BatchItem,
    ItemProblem,
    JobResultBody,
)
from domain.ids import is_job_id
from eventlog import batches as records
from eventlog.batches import BatchRecord
from readmodel import batches as sql
from readmodel.batches import Projected
from readmodel.listing import last_position

log = logging.getLogger(__name__)

EXAMPLE_BATCH_ID = "7d1c1c55-58d9-4d0b-9a52-4b8c8f0b6f0e"

BatchStatus = Literal["in_progress", "cancelling", "completed", "cancelled"]


class FileLine(BatchItem):
    """One line of a batch file: a job, named by its custom_id."""

    model_config = ConfigDict(
        title="BatchFileLine",
        json_schema_extra={
            "examples": [
                {"custom_id": "msg-1", "text": "limited time offer, click now"},
                {"custom_id": "msg-2", "text": "see you at seven", "cancel_after": "1h"},
            ]
        },
    )

    custom_id: str = Field(
        min_length=1,
        max_length=MAX_CUSTOM_ID_CHARS,
        description="The client's name for the line's job, unique within the file: the "
        "batch's results list every job by it.",
    )

    @field_validator("idempotency_key", mode="before")
    @classmethod
    def _keyed_by_the_header(cls, value: Any) -> None:
        if value is not None:
            raise ValueError(
                "a line takes no idempotency_key: the file's Idempotency-Key header keys "
                "every line, by its custom_id"
            )


def line_schema() -> dict[str, Any]:
    """A line's JSON schema, for the OpenAPI description: without the field it refuses."""
    schema = FileLine.model_json_schema()
    schema["properties"].pop("idempotency_key", None)
    return schema


# ---------------------------------------------------------------- POST /v1/batches


class BadLineBody(BaseModel):
    line: int = Field(ge=1, description="The line's number in the file, from 1.")
    custom_id: str | None = Field(description="The line's custom_id, when it had a valid one.")
    error: ItemProblem = Field(
        description="Why the line made no job: validation-error, malformed-json, "
        "line-too-long, duplicate-custom-id, unknown-model-version, model-retired, "
        "idempotency-key-reused or queue-full."
    )


class BatchFileAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": EXAMPLE_BATCH_ID,
                    "lines": 3,
                    "accepted": 2,
                    "replayed": 0,
                    "rejected": 1,
                    "bad_lines": [
                        {
                            "line": 2,
                            "custom_id": None,
                            "error": {
                                "type": "urn:inferflow:problem:malformed-json",
                                "title": "Malformed JSON",
                                "detail": "line 2 is not valid JSON: Expecting value: line 1 "
                                "column 1 (char 0)",
                            },
                        }
                    ],
                    "bad_lines_omitted": 0,
                }
            ]
        }
    )

    batch_id: str = Field(description="The batch: GET /v1/batches/{batch_id}.")
    lines: int = Field(ge=0, description="Lines read that are not blank.")
    accepted: int = Field(ge=0, description="Lines that created a job.")
    replayed: int = Field(
        ge=0, description="Lines whose job an earlier sending of the file created already."
    )
    rejected: int = Field(ge=0, description="Lines that created no job.")
    bad_lines: list[BadLineBody] = Field(
        description="The rejected lines, in the file's order: the first BAD_LINES_SHOWN "
        "(1000) of them."
    )
    bad_lines_omitted: int = Field(ge=0, description="Rejected lines not listed.")


# ---------------------------------------------------------------- GET /v1/batches/{id}


class BatchCounts(BaseModel):
    total: int = Field(ge=0, description="Jobs of the batch.")
    queued: int = Field(ge=0, description="Accepted, not started (projected or not yet).")
    started: int = Field(ge=0)
    succeeded: int = Field(ge=0)
    failed: int = Field(ge=0)
    cancelled: int = Field(ge=0)


class BatchBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "batch_id": EXAMPLE_BATCH_ID,
                    "status": "in_progress",
                    "counts": {
                        "total": 100000,
                        "queued": 41200,
                        "started": 64,
                        "succeeded": 58590,
                        "failed": 146,
                        "cancelled": 0,
                    },
                    "created_at": "2026-12-06T10:00:00.120000Z",
                    "finished_at": None,
                }
            ]
        }
    )

    batch_id: str
    status: BatchStatus = Field(
        description="in_progress: some jobs are not terminal; cancelling: the batch was "
        "cancelled and some jobs are not terminal yet; completed: every job is terminal; "
        "cancelled: every job is terminal and the batch was cancelled."
    )
    counts: BatchCounts
    created_at: datetime = Field(description="When its first jobs were accepted.")
    finished_at: datetime | None = Field(
        description="When its last job ended, once every job is terminal."
    )

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "cancelled")


EXAMPLE_RESULT: dict[str, Any] = {
    "custom_id": "msg-1",
    "job_id": EXAMPLE_JOB_ID,
    "status": "succeeded",
    "result": {
        "label": "spam",
        "score": 0.9778,
        "model_version": "spam-tfidf-lr-v1",
        "probabilities": {"ham": 0.0222, "spam": 0.9778},
    },
    "error": None,
    "error_type": None,
    "cancel_reason": None,
    "finished_at": "2026-12-06T10:00:01.093413Z",
}
EXAMPLE_RESULT_LINE = json.dumps(EXAMPLE_RESULT, separators=(",", ":"))


class ResultLine(BaseModel):
    """One line of GET /v1/batches/{id}/results (for the description: the lines are written
    from the rows as they are read, not through this model)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RESULT]})

    custom_id: str | None = Field(
        description="The line's custom_id (null for a job sent "
        "without one to POST /v1/inference/batch)."
    )
    job_id: str
    status: Literal["succeeded", "failed", "cancelled"]
    result: JobResultBody | None = Field(description="A succeeded job's result.")
    error: str | None = Field(description="Why a failed job failed.")
    error_type: str | None = Field(description="Class of the failure.")
    cancel_reason: str | None = Field(description="Why a cancelled job was (as in JobBody).")
    finished_at: datetime | None


def result_line(row: dict[str, Any]) -> str:
    """A terminal job's row of the results query, as its line of the results (JSON, ASCII)."""
    result = None
    if row["result_label"] is not None:
        result = {
            "label": row["result_label"],
            "score": row["result_score"],
            "model_version": row["result_model_version"],
            "probabilities": row["result_probabilities"],
        }
    finished_at = row["finished_at"]
    line = {
        "custom_id": row["custom_id"],
        "job_id": str(row["job_id"]),
        "status": row["status"],
        "result": result,
        "error": row["error"],
        "error_type": row["error_type"],
        "cancel_reason": row["cancel_reason"],
        "finished_at": _iso(finished_at) if finished_at is not None else None,
    }
    return json.dumps(line, separators=(",", ":"))


def _iso(moment: datetime) -> str:
    # As the API writes times elsewhere (pydantic): UTC with a Z.
    return moment.isoformat().replace("+00:00", "Z")


def summary(
    batch_id: str, record: BatchRecord | None, projected: Projected, cancel_requested: bool
) -> BatchBody | None:
    """The batch as its record and its projected jobs show it; None when neither knows it."""
    found = sql.summarize(record, projected, cancel_requested)
    if found is None:
        return None
    return BatchBody(
        batch_id=batch_id,
        status=cast(BatchStatus, found.status),
        counts=BatchCounts(**found.counts),
        created_at=found.created_at,
        finished_at=found.finished_at,
    )


# ---------------------------------------------------------------- reading a batch


@dataclass(frozen=True, slots=True)
class Found:
    """A batch a reader may see: its tenant, and its summary when it was found."""

    batch_id: str
    tenant: str
    body: BatchBody


async def find(svc: Services, principal: Principal, batch_id: str) -> Found | None:
    """The batch as `principal` may see it; None for an unknown id and for another tenant's
    batch alike (an admin sees every tenant's)."""
    if not is_job_id(batch_id):  # any canonical UUID; keeps other strings from PostgreSQL
        return None
    record, cancel_requested = await _from_redis(svc, batch_id)
    if record is not None:
        if not principal.sees(record.tenant):
            return None
        tenant = record.tenant
    elif principal.admin:
        rows = await svc.projection.rows(*sql.tenant_query(batch_id))
        if not rows:
            return None
        tenant = rows[0]["tenant"]
    else:
        tenant = principal.tenant  # another tenant's batch: no row of this one
    return await read(svc, batch_id, tenant, record, cancel_requested)


async def read(
    svc: Services,
    batch_id: str,
    tenant: str,
    record: BatchRecord | None = None,
    cancel_requested: bool = False,
) -> Found | None:
    """`tenant`'s batch, its summary read now (with its record and cancel, when given)."""
    projected = sql.projected(await svc.projection.rows(*sql.summary_query(tenant, batch_id)))
    body = summary(batch_id, record, projected, cancel_requested)
    return Found(batch_id, tenant, body) if body is not None else None


async def reread(svc: Services, found: Found) -> Found:
    """`found`'s batch, read again (its record too: more jobs may have been accepted)."""
    record, cancel_requested = await _from_redis(svc, found.batch_id)
    again = await read(svc, found.batch_id, found.tenant, record, cancel_requested)
    return again or found


async def _from_redis(svc: Services, batch_id: str) -> tuple[BatchRecord | None, bool]:
    """The batch's record, and whether its cancel has been asked for."""
    names = svc.settings.names

    async def both() -> tuple[BatchRecord | None, bool]:
        return (
            await records.read(svc.redis, names, batch_id),
            await records.cancel_requested(svc.redis, names, batch_id),
        )

    return await guarded_again("redis", svc.timeout_s, both)


NDJSON = "application/x-ndjson"
# Terminal jobs read per round trip of a batch's results.
RESULT_ROWS = 1000


async def results(svc: Services, found: Found) -> AsyncIterator[bytes]:
    """The batch's results (GET /v1/batches/{id}/results), as JSON Lines a chunk at a time.
    The first chunk is read before it returns: a database that does not answer is then a 503,
    not a 200 cut short."""
    first = await svc.projection.rows(
        *sql.results_query(found.tenant, found.batch_id, None, RESULT_ROWS)
    )
    return _result_lines(svc, found, first)


async def _result_lines(
    svc: Services, found: Found, rows: list[dict[str, Any]]
) -> AsyncIterator[bytes]:
    while rows:
        yield "".join(result_line(row) + "\n" for row in rows).encode()
        if len(rows) < RESULT_ROWS:
            return
        after = last_position(rows)
        query = sql.results_query(found.tenant, found.batch_id, after, RESULT_ROWS)
        rows = await svc.projection.rows(*query)


# ---------------------------------------------------------------- progress (GET .../events)

# How often a batch's progress is read again: at least this long between reads, and ten times
# as long as the last read took (a large batch's counts cost more to read, so each stream's
# share of the database stays about a tenth of a connection at most).
PROGRESS_POLL_S = 0.5
PROGRESS_READ_SHARE = 10
# After a failed read (PostgreSQL or Redis down), the next waits longer, up to this.
PROGRESS_MAX_BACKOFF_S = 5.0

PROGRESS = "progress"
FINISHED = "finished"


def progress_id(body: BatchBody) -> str:
    """A progress event's id: the state it shows (status and counts), so a client resuming with
    it as Last-Event-ID is sent a state only when it differs from the one it has."""
    c = body.counts
    counts = (c.total, c.queued, c.started, c.succeeded, c.failed, c.cancelled)
    return f"{body.status}:" + ":".join(str(n) for n in counts)


async def progress(
    svc: Services, found: Found, after: str | None
) -> AsyncIterator[tuple[str, str, BatchBody]]:
    """The batch's states as they change, as (event name, id, state): the first one unless its
    id is `after` (the client has it), then each new one, until the `finished` one, which
    ends it."""
    loop = asyncio.get_running_loop()
    last, wait_s = after, PROGRESS_POLL_S
    while True:
        body = found.body
        event_id = progress_id(body)
        if event_id != last:
            yield (FINISHED if body.finished else PROGRESS), event_id, body
            last = event_id
        if body.finished:
            return
        await asyncio.sleep(wait_s)
        started = loop.time()
        try:
            found = await reread(svc, found)
        except DependencyUnavailableError as exc:
            wait_s = min(PROGRESS_MAX_BACKOFF_S, wait_s * 2)
            log.warning(
                "batch %s: progress not read (%s); next in %.1f s", found.batch_id, exc, wait_s
            )
            continue
        wait_s = max(PROGRESS_POLL_S, PROGRESS_READ_SHARE * (loop.time() - started))
