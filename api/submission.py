"""Accepting jobs, one (POST /v1/inference) or a batch of them (POST /v1/inference/batch): the
model version check, the event, the request's fingerprint and the Idempotency-Key's rules. A
job submitted alone is interactive, a batch's are bulk (domain.lanes).

A batch is judged item by item, each as POST /v1/inference would judge it, and its valid items
are accepted together (one Redis command per partition they go to). An item's answer is a plain
dict, rendered as it is: with a thousand items, building and validating a response model per
item would cost more than accepting the item.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from api import deadlines, metrics
from api.errors import DependencyUnavailableError, IdempotencyKeyReusedError, QueueFullError
from api.guard import guarded
from api.problems import TYPE_PREFIX
from api.schemas import KEY_PATTERN, BatchItem, InferenceRequest
from api.webhooks import WEBHOOK_REFUSED, admit_webhook
from classifier.errors import ModelRetiredError, UnknownModelVersionError
from domain.events import JobRequested
from domain.ids import new_job_id, partition_of
from domain.lanes import BULK, INTERACTIVE
from domain.webhooks import COMPLETED
from eventlog import batches
from eventlog.submission import BatchEntry, Submission
from runtime import spans, tracing
from runtime.errors import RefusedWebhookError

if TYPE_CHECKING:
    from api.deps import Services

log = logging.getLogger(__name__)

KEY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
_KEY = re.compile(KEY_PATTERN)


def utcnow() -> datetime:
    return datetime.now(UTC)


def is_valid_key(value: str) -> bool:
    return _KEY.fullmatch(value) is not None


def request_fingerprint(text: str, model_version: str) -> str:
    """What a key is bound to: the stripped text and the model version."""
    canonical = json.dumps({"model_version": model_version, "text": text}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def requested(
    job_id: str,
    text: str,
    version: str,
    occurred_at: datetime,
    traceparent: str,
    tenant: str,
    lane: str,
    cancel_after_ms: int | None = None,
    batch_id: str = "",
    custom_id: str | None = None,
    webhook: str | None = None,
    webhook_filter: str = COMPLETED,
) -> JobRequested:
    return JobRequested(
        job_id=job_id,
        occurred_at=occurred_at,
        text=text,
        model_version=version,
        traceparent=traceparent,
        tenant=tenant,
        lane=lane,
        batch_id=batch_id,
        custom_id=custom_id or "",
        deadline=deadlines.deadline(occurred_at, cancel_after_ms),
        webhook=webhook or "",
        webhook_events_filter=webhook_filter,
    )


def new_batch_id() -> str:
    """A batch's id: random, as a UUID (a batch spans partitions, so none is named in it)."""
    return str(uuid.uuid4())


# The namespace of the batch ids named by a tenant's Idempotency-Key (UUIDv5).
_KEYED_BATCHES = uuid.uuid5(uuid.NAMESPACE_URL, "urn:inferflow:batch")


def keyed_batch_id(tenant: str, key: str) -> str:
    """The batch a file sent with Idempotency-Key `key` is: the same for every sending of it,
    another for each tenant (a key is its tenant's)."""
    return str(uuid.uuid5(_KEYED_BATCHES, f"{tenant}\n{key}"))


def line_key(key: str, custom_id: str) -> str:
    """The key that binds the job of a file's line to the file's Idempotency-Key and the line's
    custom_id. A tab cannot be part of an Idempotency-Key: so no header names it, and no two
    (key, custom_id) pairs share one."""
    return f"{key}\t{custom_id}"


async def accept(
    svc: Services,
    tenant: str,
    body: InferenceRequest,
    key: str | None,
    job_id: str,
    traceparent: str,
    cancel_after_ms: int | None = None,
) -> tuple[JobRequested, Submission]:
    """Append `tenant`'s job as `job_id`, or find the job the key already named (a replay); a
    key reused with another request is IdempotencyKeyReusedError. `traceparent` is the
    request's header, "" when it had none; `cancel_after_ms` the job's Cancel-After."""
    version = body.model_version or svc.default_model()
    try:
        svc.require_model(version)
    except ModelRetiredError:
        # A retry of a request accepted before the retirement is its replay, not a refusal:
        # the client may not have seen its 202. Once its key has expired, it is refused.
        fingerprint = request_fingerprint(body.text, version)
        if key is None or await svc.log.key_fingerprint(key, tenant) != fingerprint:
            raise
    if body.webhook is not None:
        await admit_webhook(svc, body.webhook)
    with spans.span(
        "inferflow.submit", traceparent, **{"inferflow.model_version": version}
    ) as current:
        # With spans on, the job's work hangs under this request's span.
        trace = current.traceparent or tracing.accept(traceparent)
        event = requested(
            job_id,
            body.text,
            version,
            utcnow(),
            trace,
            tenant,
            INTERACTIVE,
            cancel_after_ms,
            webhook=body.webhook,
            webhook_filter=body.webhook_filter,
        )
        current.set(**{"inferflow.job_id": event.job_id})
        fingerprint = request_fingerprint(body.text, version)
        cap = await _cap(svc, tenant)
        submission = await svc.log.submit(event, key, fingerprint, cap)
        if submission.refused and key is None:
            event, submission = await _elsewhere(svc, event, fingerprint, cap)
            current.set(**{"inferflow.job_id": event.job_id})
        if not submission.created:
            replayed: dict[str, spans.AttributeValue] = {
                "inferflow.job_id": submission.job_id,
                "inferflow.replayed": True,
            }
            current.set(**replayed)
    if submission.refused:
        raise QueueFullError(tenant)
    if not submission.created:
        if submission.fingerprint != fingerprint and not _under_another_default(
            svc, body, submission.fingerprint
        ):
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used with a different request body"
            )
        metrics.IDEMPOTENT_REPLAYS.labels(svc.tenant_label(tenant)).inc()
    else:
        metrics.JOBS_SUBMITTED.labels(svc.tenant_label(tenant)).inc()
    return event, submission


def _under_another_default(svc: Services, body: InferenceRequest, fingerprint: str | None) -> bool:
    """Whether a request without model_version is the key's first one, sent when another
    default was in force: the default changes without restart (`python -m classifier
    default`), and a client's retry must stay a replay across the switch."""
    if body.model_version or fingerprint is None:
        return False
    return any(fingerprint == request_fingerprint(body.text, v) for v in svc.models.versions())


# ---------------------------------------------------------------- batches

Answer = dict[str, Any]
Pending = list[tuple[Answer, BatchEntry]]
ModelVersionError = UnknownModelVersionError | ModelRetiredError


async def _elsewhere(
    svc: Services, event: JobRequested, fingerprint: str, cap: int
) -> tuple[JobRequested, Submission]:
    """A job the cap refused in its partition, tried in the others in turn (as a new id there):
    the cap is the tenant's, each partition holding only a share of it. Jobs with an
    Idempotency-Key stay where their key named them."""
    submission = Submission(event.job_id, created=False, refused=True)
    for partition in svc.log.placement.elsewhere(partition_of(event.job_id)):
        moved = dataclasses.replace(event, job_id=new_job_id(partition))
        submission = await svc.log.submit(moved, None, fingerprint, cap)
        if not submission.refused:
            return moved, submission
    return event, submission


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What every item of one batch shares: its id and tenant, the request's trace, the
    Cancel-After of the items that name none of their own; for a file (POST /v1/batches), its
    Idempotency-Key, which keys each line by its custom_id (`line_key`). How its items are
    judged (`item_model`) and named in their errors (`item_path`, then the item's number)."""

    batch_id: str
    tenant: str
    traceparent: str = ""
    cancel_after_ms: int | None = None
    idempotency_key: str | None = None
    item_model: type[BatchItem] = BatchItem
    item_path: str = "body.items"


async def accept_batch(
    svc: Services,
    context: BatchContext,
    items: Sequence[Any],
    numbers: Sequence[int] | None = None,
) -> tuple[dict[str, int], list[Answer]]:
    """Judge every item, accept the valid ones as the batch's jobs in one command, and count
    them in the batch's record; the counts by status, and every item's answer in the request's
    order. `numbers`: each item's number in its answer and errors (its index without)."""
    tenant, traceparent = context.tenant, context.traceparent
    attributes: dict[str, spans.AttributeValue] = {"inferflow.batch_size": len(items)}
    with spans.span("inferflow.submit_batch", traceparent, **attributes) as current:
        # One trace for the request: with spans on, every job's work hangs under this span.
        trace = current.traceparent or tracing.accept(traceparent)
        traced = dataclasses.replace(context, traceparent=trace)
        answers, pending = await judge(items, svc, traced, numbers=numbers)
        cap = await _cap(svc, tenant)
        submissions = await svc.log.submit_batch([entry for _, entry in pending], cap)
        settle(pending, submissions, context)
        await _settle_elsewhere(svc, pending, submissions, cap)
        counts = count(answers)
        current.set(**{f"inferflow.{status}": n for status, n in counts.items()})
    if counts["accepted"]:
        await _record(svc, context, pending[0][1].event.occurred_at, counts["accepted"])
    label = svc.tenant_label(tenant)
    metrics.JOBS_SUBMITTED.labels(label).inc(counts["accepted"])
    metrics.IDEMPOTENT_REPLAYS.labels(label).inc(counts["replayed"])
    return counts, answers


async def _record(svc: Services, context: BatchContext, created_at: datetime, jobs: int) -> None:
    """Count a batch's new jobs in its record (eventlog.batches). Once, never again: a count
    sent twice would leave the batch unfinished for ever, and the jobs are on the log whatever
    happens here, so a failure is logged and the projection makes the count good later."""
    settings = svc.settings
    ttl_s = settings.job_index_ttl_s
    if context.idempotency_key:  # as long as the keys that replay its jobs
        ttl_s = max(ttl_s, settings.idempotency_ttl_s)
    try:
        async with guarded("redis", svc.timeout_s):
            await batches.add_jobs(
                svc.redis, settings.names, context.batch_id, context.tenant, created_at, jobs, ttl_s
            )
    except DependencyUnavailableError as exc:
        log.warning(
            "batch %s: %d jobs accepted, not counted in its record: %s", context.batch_id, jobs, exc
        )


async def watch_batch(svc: Services, context: BatchContext, url: str, triggers: str) -> None:
    """Have the batch's webhook sent for `triggers` (format_filter's form): once a job of it
    has begun, once every job of it is terminal (the notifiers watch it). Unlike its count, a
    failure here is the request's (503): the client is told its batch webhook may not come,
    and can send the batch again with its keys."""
    settings = svc.settings
    async with guarded("redis", svc.timeout_s):
        await batches.watch(
            svc.redis, settings.names, context.batch_id, context.tenant, url,
            settings.job_index_ttl_s, triggers,
        )  # fmt: skip


# Items judged between two yields to the event loop: judging a thousand takes tens of
# milliseconds of CPU, which a single job's request would otherwise wait behind.
JUDGE_RUN = 50


async def judge(
    items: Sequence[Any],
    svc: Services,
    context: BatchContext,
    first_index: int = 0,
    numbers: Sequence[int] | None = None,
) -> tuple[list[Answer], Pending]:
    """An answer for every item (final for the rejected ones) and the entries to submit;
    `first_index` is the first item's place in the whole batch, or `numbers` each item's
    number (a file's line numbers)."""
    # Batches take turns: each yield below would otherwise let every other batch being judged
    # take a run too, and a single job's request waited for all of those runs at each of its
    # own awaits (over 100 ms with four clients posting batches). A batch waiting for its turn
    # holds nothing, and the others' Redis work goes on meanwhile.
    async with svc.judging:
        return await _judge(items, svc, context, first_index, numbers)


async def _judge(
    items: Sequence[Any],
    svc: Services,
    context: BatchContext,
    first_index: int,
    numbers: Sequence[int] | None,
) -> tuple[list[Answer], Pending]:
    answers: list[Answer] = []
    pending: Pending = []
    version_errors: dict[str, ModelVersionError | None] = {}  # one lookup per version
    webhook_errors: dict[str, RefusedWebhookError | None] = {}  # one resolution per URL
    default_version = svc.default_model()
    occurred_at = utcnow()
    job_ids = iter(svc.log.placement.job_ids(len(items)))
    indexes = numbers if numbers is not None else range(first_index, first_index + len(items))
    model = context.item_model
    for position, (index, raw) in enumerate(zip(indexes, items, strict=True)):
        if position and not position % JUDGE_RUN:
            await asyncio.sleep(0)
        try:
            item = model.model_validate(raw)
        except ValidationError as exc:
            answers.append(_invalid(index, raw, exc, context.item_path))
            continue
        answer = _answer(index, item.custom_id)
        answers.append(answer)
        version = item.model_version or default_version
        if version not in version_errors:
            version_errors[version] = _unknown_version(svc, version)
        error = version_errors[version]
        if error is not None:
            _reject(answer, _version_problem(error))
            continue
        if item.webhook is not None:
            if item.webhook not in webhook_errors:
                webhook_errors[item.webhook] = await _refused_webhook(svc, item.webhook)
            refused = webhook_errors[item.webhook]
            if refused is not None:
                _reject(answer, item_problem(*WEBHOOK_REFUSED, str(refused)))
                continue
        entry = _entry(next(job_ids), item, version, occurred_at, context)
        pending.append((answer, entry))
    return answers, pending


def _entry(
    job_id: str, item: BatchItem, version: str, occurred_at: datetime, context: BatchContext
) -> BatchEntry:
    cancel_after_ms = item.cancel_after_ms or context.cancel_after_ms
    event = requested(
        job_id,
        item.text,
        version,
        occurred_at,
        context.traceparent,
        context.tenant,
        BULK,
        cancel_after_ms,
        context.batch_id,
        item.custom_id,
        item.webhook,
        item.webhook_filter,
    )
    key = item.idempotency_key
    if context.idempotency_key and item.custom_id is not None:
        key = line_key(context.idempotency_key, item.custom_id)
    # Only a key keeps a fingerprint, and hashing is a tenth of an item's cost: skipped.
    fingerprint = request_fingerprint(item.text, version) if key else ""
    return BatchEntry(event, key, fingerprint)


def _unknown_version(svc: Services, version: str) -> ModelVersionError | None:
    try:
        svc.require_model(version)
    except (UnknownModelVersionError, ModelRetiredError) as exc:
        return exc
    return None


async def _refused_webhook(svc: Services, url: str) -> RefusedWebhookError | None:
    try:
        await admit_webhook(svc, url)
    except RefusedWebhookError as exc:
        return exc
    return None


async def _cap(svc: Services, tenant: str) -> int:
    """The cap of unfinished jobs each partition holds `tenant` to (0: none)."""
    limits = await svc.tenants.limits(tenant)
    return limits.cap_share(svc.settings.partitions)


def settle(pending: Pending, submissions: list[Submission], context: BatchContext) -> None:
    """Fill in the submitted items' answers from what the script did with each."""
    for (answer, entry), submission in zip(pending, submissions, strict=True):
        if submission.refused:
            _reject(answer, _queue_full_problem())
        elif submission.created:
            answer.update(status="accepted", job_id=submission.job_id)
        elif submission.fingerprint == entry.fingerprint:
            answer.update(status="replayed", job_id=submission.job_id)
        else:
            _reject(answer, _key_reused_problem(context))


async def _settle_elsewhere(
    svc: Services, pending: Pending, submissions: list[Submission], cap: int
) -> None:
    """The unkeyed items the cap refused in their partition, tried in the others in turn (as
    `_elsewhere` does for one job)."""
    refused = [
        (answer, entry)
        for (answer, entry), submission in zip(pending, submissions, strict=True)
        if submission.refused and entry.idempotency_key is None
    ]
    if not refused:
        return
    first = partition_of(refused[0][1].event.job_id)
    for partition in svc.log.placement.elsewhere(first):
        moved = [
            (answer, dataclasses.replace(entry, event=_moved(entry.event, partition)))
            for answer, entry in refused
        ]
        again = await svc.log.submit_batch([entry for _, entry in moved], cap)
        for (answer, _), submission in zip(moved, again, strict=True):
            if not submission.refused:
                answer.update(status="accepted", job_id=submission.job_id, error=None)
        refused = [pair for pair, s in zip(refused, again, strict=True) if s.refused]
        if not refused:
            return


def _moved(event: JobRequested, partition: int) -> JobRequested:
    return dataclasses.replace(event, job_id=new_job_id(partition))


def _answer(index: int, custom_id: str | None) -> Answer:
    return {"index": index, "custom_id": custom_id, "status": None, "job_id": None, "error": None}


def _reject(answer: Answer, error: dict[str, Any]) -> None:
    answer.update(status="rejected", job_id=None, error=error)


def _invalid(index: int, raw: Any, exc: ValidationError, path: str) -> Answer:
    raw_errors = exc.errors(include_url=False, include_input=False, include_context=False)
    errors = _field_errors(f"{path}.{index}", raw_errors)
    detail = "; ".join(f"{err['field']}: {err['message']}" for err in errors)
    answer = _answer(index, _echoable_custom_id(raw, raw_errors))
    _reject(answer, item_problem("validation-error", "Invalid request", detail, errors=errors))
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


def item_problem(slug: str, title: str, detail: str, **extensions: Any) -> dict[str, Any]:
    """An item's problem detail: the one POST /v1/inference would answer, less the status."""
    return {"type": TYPE_PREFIX + slug, "title": title, "detail": detail, **extensions}


def _version_problem(exc: ModelVersionError) -> dict[str, Any]:
    if isinstance(exc, ModelRetiredError):
        return item_problem(
            "model-retired", "Model version retired", str(exc), replacement=exc.replacement
        )
    return item_problem(
        "unknown-model-version", "Unknown model version", str(exc), available=list(exc.known)
    )


def _queue_full_problem() -> dict[str, Any]:
    detail = "the tenant has as many unfinished jobs as its cap allows; retry when some finish"
    return item_problem("queue-full", "Queue full", detail)


def _key_reused_problem(context: BatchContext) -> dict[str, Any]:
    detail = "this idempotency_key was used with a different text or model_version"
    if context.idempotency_key:
        detail = (
            "a line with this custom_id was sent with this Idempotency-Key before, with a "
            "different text or model_version"
        )
    return item_problem("idempotency-key-reused", "Idempotency-Key reused", detail)


def count(answers: list[Answer]) -> dict[str, int]:
    counts = dict.fromkeys(("accepted", "replayed", "rejected"), 0)
    for answer in answers:
        counts[answer["status"]] += 1
    return counts


def _field_errors(prefix: str, raw_errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic's errors for the item at `prefix` (`body.items.3`), named by their place in
    the request, as FieldErrors."""
    return [
        {
            "field": ".".join([prefix, *(str(part) for part in err["loc"])]),
            "message": err["msg"],
            "type": err["type"],
        }
        for err in raw_errors
    ]
