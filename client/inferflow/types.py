"""What the API answers, as frozen dataclasses: jobs, their events, batches and their items.

Each type is built from the API's JSON by its `from_json`; fields the API may add later are
ignored, so a newer server does not break an older client."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
TERMINAL_EVENTS = frozenset({"JobSucceeded", "JobFailed", "JobCancelled"})


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Problem:
    """An RFC 9457 problem detail; `extra` holds its other members (errors, bad_lines, ...)."""

    type: str
    title: str
    status: int | None
    detail: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Mapping[str, Any], status: int | None = None) -> Problem:
        known = {"type", "title", "status", "detail"}
        return cls(
            type=str(body.get("type", "about:blank")),
            title=str(body.get("title", "")),
            status=body.get("status", status),
            detail=str(body.get("detail", "")),
            extra={k: v for k, v in body.items() if k not in known},
        )

    @property
    def name(self) -> str:
        """The type's last part: `rate-limited` for `urn:inferflow:problem:rate-limited`."""
        return self.type.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Result:
    label: str
    score: float
    model_version: str
    probabilities: Mapping[str, float]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Result:
        return cls(
            label=body["label"],
            score=float(body["score"]),
            model_version=body["model_version"],
            probabilities=dict(body.get("probabilities") or {}),
        )


@dataclass(frozen=True)
class Job:
    """A job as the API last showed it. A fresh submission's answer knows only `job_id` and
    `status`; `replayed` is true when an Idempotency-Key gave back an earlier job."""

    job_id: str
    status: str
    model_version: str | None = None
    result: Result | None = None
    error: str | None = None
    error_type: str | None = None
    retry_count: int = 0
    attempts: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    deadline: datetime | None = None
    cancel_reason: str | None = None
    replayed: bool = False

    @property
    def done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, body: Mapping[str, Any], replayed: bool = False) -> Job:
        result = body.get("result")
        return cls(
            job_id=body["job_id"],
            status=body.get("status", "queued"),
            model_version=body.get("model_version"),
            result=Result.from_json(result) if result else None,
            error=body.get("error"),
            error_type=body.get("error_type"),
            retry_count=int(body.get("retry_count") or 0),
            attempts=int(body.get("attempts") or 0),
            created_at=_time(body.get("created_at")),
            started_at=_time(body.get("started_at")),
            finished_at=_time(body.get("finished_at")),
            updated_at=_time(body.get("updated_at")),
            batch_id=body.get("batch_id"),
            custom_id=body.get("custom_id"),
            deadline=_time(body.get("deadline")),
            cancel_reason=body.get("cancel_reason"),
            replayed=replayed,
        )


@dataclass(frozen=True)
class Event:
    """One event of a job's timeline (a stream entry of the log)."""

    entry_id: str
    type: str
    schema_version: int
    occurred_at: datetime | None
    consumer: str | None
    attempt: int | None
    payload: Mapping[str, Any]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Event:
        return cls(
            entry_id=body["entry_id"],
            type=body["type"],
            schema_version=int(body.get("schema_version") or 0),
            occurred_at=_time(body.get("occurred_at")),
            consumer=body.get("consumer"),
            attempt=body.get("attempt"),
            payload=dict(body.get("payload") or {}),
        )


@dataclass(frozen=True)
class BatchCounts:
    total: int
    queued: int
    started: int
    succeeded: int
    failed: int
    cancelled: int

    @property
    def ended(self) -> int:
        return self.succeeded + self.failed + self.cancelled


@dataclass(frozen=True)
class Batch:
    """A batch (a file's, or a JSON batch's) and how many of its jobs are where."""

    batch_id: str
    status: str
    counts: BatchCounts
    created_at: datetime | None
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        return self.status in ("completed", "cancelled")

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Batch:
        counts = body["counts"]
        return cls(
            batch_id=body["batch_id"],
            status=body["status"],
            counts=BatchCounts(**{name: int(counts.get(name, 0)) for name in _COUNT_NAMES}),
            created_at=_time(body.get("created_at")),
            finished_at=_time(body.get("finished_at")),
        )


_COUNT_NAMES = ("total", "queued", "started", "succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Item:
    """One item of `submit_many`: accepted, replayed (its key's earlier job) or rejected."""

    index: int
    custom_id: str | None
    status: str
    job_id: str | None
    error: Problem | None
    idempotency_key: str
    batch_id: str


@dataclass(frozen=True)
class ManySubmitted:
    """What `submit_many` did: its items in the order given, and the batches they went in."""

    batch_ids: tuple[str, ...]
    items: tuple[Item, ...]

    @property
    def job_ids(self) -> list[str]:
        return [item.job_id for item in self.items if item.job_id is not None]

    @property
    def rejected(self) -> list[Item]:
        return [item for item in self.items if item.status == "rejected"]


@dataclass(frozen=True)
class BadLine:
    line: int
    custom_id: str | None
    error: Problem


@dataclass(frozen=True)
class FileAccepted:
    """The answer to a batch file: its batch, and its lines' counts and problems."""

    batch_id: str
    lines: int
    accepted: int
    replayed: int
    rejected: int
    bad_lines: tuple[BadLine, ...]
    bad_lines_omitted: int

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> FileAccepted:
        return cls(
            batch_id=body["batch_id"],
            lines=int(body.get("lines", 0)),
            accepted=int(body.get("accepted", 0)),
            replayed=int(body.get("replayed", 0)),
            rejected=int(body.get("rejected", 0)),
            bad_lines=tuple(
                BadLine(b["line"], b.get("custom_id"), Problem.from_json(b["error"]))
                for b in body.get("bad_lines", ())
            ),
            bad_lines_omitted=int(body.get("bad_lines_omitted", 0)),
        )


@dataclass(frozen=True)
class ResultLine:
    """One terminal job of a batch, as its results list it."""

    custom_id: str | None
    job_id: str
    status: str
    result: Result | None
    error: str | None
    error_type: str | None
    cancel_reason: str | None
    finished_at: datetime | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ResultLine:
        result = body.get("result")
        return cls(
            custom_id=body.get("custom_id"),
            job_id=body["job_id"],
            status=body["status"],
            result=Result.from_json(result) if result else None,
            error=body.get("error"),
            error_type=body.get("error_type"),
            cancel_reason=body.get("cancel_reason"),
            finished_at=_time(body.get("finished_at")),
        )
