"""Judging the items of a batch one by one, and their answers (POST /v1/inference/batch).

An answer is a plain dict, rendered as it is: with a thousand items, building and validating a
response model per item would cost more than accepting the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from api.batch_schemas import BatchItem
from api.deps import Services
from api.problems import TYPE_PREFIX
from api.routes.inference import request_fingerprint
from api.store import utcnow
from domain.errors import UnknownModelVersionError
from domain.events import JobRequested
from domain.ids import new_job_id
from infra.batchlog import BatchEntry
from infra.eventlog import Submission

Answer = dict[str, Any]
Pending = list[tuple[Answer, BatchEntry]]


def judge(items: Sequence[Any], svc: Services, traceparent: str) -> tuple[list[Answer], Pending]:
    """An answer for every item (final for the rejected ones) and the entries to submit."""
    answers: list[Answer] = []
    pending: Pending = []
    version_errors: dict[str, UnknownModelVersionError | None] = {}  # one lookup per version
    occurred_at = utcnow()
    for index, raw in enumerate(items):
        try:
            item = BatchItem.model_validate(raw)
        except ValidationError as exc:
            answers.append(_invalid(index, raw, exc))
            continue
        answer = _answer(index, item.custom_id)
        answers.append(answer)
        version = item.model_version or svc.settings.default_model_version
        if version not in version_errors:
            version_errors[version] = _unknown_version(svc, version)
        error = version_errors[version]
        if error is not None:
            _reject(answer, _unknown_version_problem(error))
            continue
        pending.append((answer, _entry(item, version, occurred_at, traceparent)))
    return answers, pending


def _entry(item: BatchItem, version: str, occurred_at: datetime, traceparent: str) -> BatchEntry:
    event = JobRequested(
        job_id=new_job_id(),
        occurred_at=occurred_at,
        text=item.text,
        model_version=version,
        traceparent=traceparent,
    )
    key = item.idempotency_key
    # Only a key keeps a fingerprint, and hashing is a tenth of an item's cost: skipped.
    fingerprint = request_fingerprint(item.text, version) if key else ""
    return BatchEntry(event, key, fingerprint)


def _unknown_version(svc: Services, version: str) -> UnknownModelVersionError | None:
    try:
        svc.require_model(version)
    except UnknownModelVersionError as exc:
        return exc
    return None


def settle(pending: Pending, submissions: list[Submission]) -> None:
    """Fill in the submitted items' answers from what the script did with each."""
    for (answer, entry), submission in zip(pending, submissions, strict=True):
        if submission.created:
            answer.update(status="accepted", job_id=submission.job_id)
        elif submission.fingerprint == entry.fingerprint:
            answer.update(status="replayed", job_id=submission.job_id)
        else:
            _reject(answer, _key_reused_problem())


def _answer(index: int, custom_id: str | None) -> Answer:
    return {"index": index, "custom_id": custom_id, "status": None, "job_id": None, "error": None}


def _reject(answer: Answer, error: dict[str, Any]) -> None:
    answer.update(status="rejected", job_id=None, error=error)


def _invalid(index: int, raw: Any, exc: ValidationError) -> Answer:
    raw_errors = exc.errors(include_url=False, include_input=False, include_context=False)
    errors = _field_errors(index, raw_errors)
    detail = "; ".join(f"{err['field']}: {err['message']}" for err in errors)
    answer = _answer(index, _echoable_custom_id(raw, raw_errors))
    _reject(answer, _problem("validation-error", "Invalid request", detail, errors=errors))
    return answer


def _echoable_custom_id(raw: Any, raw_errors: list[Any]) -> str | None:
    """An invalid item's custom_id when that field itself is valid: the client's handle on it."""
    custom_id = raw.get("custom_id") if isinstance(raw, dict) else None
    if not isinstance(custom_id, str):
        return None
    # pydantic reports every invalid field of an object, so no error naming custom_id means a
    # valid one; unless an error names the whole item (a key that is no string): then no field
    # was checked.
    checked = all(err["loc"] for err in raw_errors)
    faulted = any(err["loc"][:1] == ("custom_id",) for err in raw_errors)
    return custom_id if checked and not faulted else None


def _problem(slug: str, title: str, detail: str, **extensions: Any) -> dict[str, Any]:
    # An item's problem detail is the one POST /v1/inference would answer, less the status.
    return {"type": TYPE_PREFIX + slug, "title": title, "detail": detail, **extensions}


def _unknown_version_problem(exc: UnknownModelVersionError) -> dict[str, Any]:
    return _problem(
        "unknown-model-version", "Unknown model version", str(exc), available=list(exc.known)
    )


def _key_reused_problem() -> dict[str, Any]:
    detail = "this idempotency_key was used with a different text or model_version"
    return _problem("idempotency-key-reused", "Idempotency-Key reused", detail)


def count(answers: list[Answer]) -> dict[str, int]:
    counts = dict.fromkeys(("accepted", "replayed", "rejected"), 0)
    for answer in answers:
        counts[answer["status"]] += 1
    return counts


def _field_errors(index: int, raw_errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic's errors for item `index`, named by their place in the body, as FieldErrors."""
    prefix = f"body.items.{index}"
    return [
        {
            "field": ".".join([prefix, *(str(part) for part in err["loc"])]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in raw_errors
    ]
