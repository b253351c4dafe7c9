"""The operator console's pages (/console): overview, jobs, a job and its timeline, batches,
dead letters, models; and the forms that sign in and out, cancel and redrive. Server-rendered
(api.console.pages); who is signed in, and what a form must carry, is api.console.session.

A tenant's key sees its tenant's jobs and batches only, and the overview without the log's
shape (the streams are every tenant's); dead letters need an admin's key. Not in the OpenAPI
description: these are pages, not the API.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import ValidationError

from api import batches, cancelling, deadletters, overview, timelines
from api.auth import Principal
from api.console import session
from api.console.pages import page
from api.console.session import NotAllowed, Visit
from api.deps import ServicesDep, charge
from api.errors import RefusedRequestError, UnauthenticatedError
from api.keys import Scope
from api.listing import ListingQuery, read_page
from api.longpoll import read_job, visible
from api.modelinfo import model_list
from classifier.errors import ModelIntegrityError, UnknownModelVersionError
from domain.ids import is_job_id
from domain.job import JobStatus
from domain.tenants import is_tenant
from readmodel import batches as batch_sql
from readmodel import timeline

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_JOBS = 25
BATCHES_LISTED = 50
# The overview's window: a chart of the last minutes.
OVERVIEW_MINUTES = 5
_REF = re.compile(deadletters.REF_PATTERN)
NOTICES = {
    "cancelled": "Cancel sent: the job is cancelled.",
    "batch-cancelled": "Cancel sent: the batch's unfinished jobs are being cancelled.",
}


async def _visit(request: Request, svc: ServicesDep, need: Scope = Scope.READ) -> Visit:
    visit = await session.signed_in(request, svc)
    if not visit.principal.allows(need):
        raise NotAllowed(f"This page needs a key with the {need.value} scope.")
    await charge(svc, request, visit.principal)
    return visit


def _common(request: Request, visit: Visit, section: str) -> dict[str, Any]:
    principal = visit.principal
    return {
        "section": section,
        "principal": principal,
        "csrf": visit.csrf,
        "csrf_field": session.CSRF_FIELD,
        "can_cancel": principal.allows(Scope.CANCEL),
        "notice": NOTICES.get(request.query_params.get("done", "")),
        # What the page's script reads again to refresh it: a page answered to a form is not.
        "refresh_url": str(request.url.remove_query_params("done")).removeprefix(
            f"{request.url.scheme}://{request.url.netloc}"
        )
        if request.method == "GET"
        else None,
    }


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# ---------------------------------------------------------------- signing in and out


@router.get("/sign-in")
async def sign_in_form(svc: ServicesDep) -> Response:
    if not svc.auth.enabled:
        return _see_other("/console")
    return page("sign_in.html", section="sign-in")


@router.post("/sign-in")
async def sign_in(request: Request, svc: ServicesDep) -> Response:
    if not session.same_origin(request):
        raise session.ForeignRequest
    key = (await session.form(request)).get("key", "").strip()
    try:
        await svc.auth.principal([f"Bearer {key}"])
    except UnauthenticatedError:
        # 200, a form shown again with its error: a status of 4xx would be an error in the
        # browser's console for what is an ordinary typo.
        return page(
            "sign_in.html",
            section="sign-in",
            error="That key was not accepted: it is unknown, revoked or mistyped.",
        )
    response = _see_other("/console")
    session.keep(response, request, key)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, svc: ServicesDep) -> Response:
    visit = await session.signed_in(request, svc)
    await session.checked_form(request, visit)
    response = _see_other("/console/sign-in")
    session.forget(response)
    return response


# ---------------------------------------------------------------- overview


@router.get("")
async def overview_page(request: Request, svc: ServicesDep) -> Response:
    visit = await _visit(request, svc)
    found = await overview.read(svc, visit.principal, OVERVIEW_MINUTES)
    return page(
        "overview.html",
        **_common(request, visit, "overview"),
        overview=found,
        data=found.model_dump(mode="json"),
    )


# ---------------------------------------------------------------- jobs


@router.get("/jobs")
async def jobs_page(
    request: Request,
    svc: ServicesDep,
    status: Annotated[list[str] | None, Query()] = None,
    model_version: str = "",
    label: str = "",
    batch_id: str = "",
    tenant: str = "",
    cursor: str = "",
) -> Response:
    visit = await _visit(request, svc)
    principal = visit.principal
    # An admin may look at any tenant's jobs, one tenant at a time (a listing spans none).
    shown = tenant if principal.admin and is_tenant(tenant) else principal.tenant
    filters = {
        "status": [s for s in status or [] if s],
        "model_version": model_version or None,
        "label": label or None,
        "batch_id": batch_id or None,
        "cursor": cursor or None,
        "limit": PAGE_JOBS,
    }
    context = _common(request, visit, "jobs")
    error, jobs, next_url = None, [], None
    try:
        found = await read_page(svc, shown, ListingQuery.model_validate(filters))
        jobs = found.items
        if found.next_cursor is not None:
            next_url = str(request.url.include_query_params(cursor=found.next_cursor))
    except ValidationError as exc:
        error = "; ".join(str(e["msg"]) for e in exc.errors())
    except RefusedRequestError as exc:
        error = exc.detail
    return page(
        "jobs.html",
        **context,
        jobs=jobs,
        error=error,
        next_url=next_url,
        statuses=[s.value for s in JobStatus],
        chosen=filters["status"],
        form={
            "model_version": model_version,
            "label": label,
            "batch_id": batch_id,
            "tenant": shown,
        },
    )


async def _job(svc: ServicesDep, principal: Principal, job_id: str) -> Any:
    if not is_job_id(job_id):
        return None
    return visible(principal, await read_job(svc, job_id))


@router.get("/jobs/{job_id}")
async def job_page(request: Request, svc: ServicesDep, job_id: str) -> Response:
    visit = await _visit(request, svc)
    return await _job_answer(request, svc, visit, job_id)


async def _job_answer(
    request: Request, svc: ServicesDep, visit: Visit, job_id: str, error: str | None = None
) -> Response:
    context = _common(request, visit, "jobs")
    job = await _job(svc, visit.principal, job_id)
    if job is None:
        return page("missing.html", status_code=404, **context, what=f"job {job_id}")
    lane = timeline.lane_of(job.lane, job.tenant)
    events, _ = await timelines.catch_up(svc, job_id, lane)
    return page(
        "job.html",
        **context,
        job=job,
        events=[timelines.body(event) for event in events],
        error=error,
    )


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, svc: ServicesDep, job_id: str) -> Response:
    visit = await _visit(request, svc, Scope.CANCEL)
    await session.checked_form(request, visit)
    if not is_job_id(job_id):
        return await _job_answer(request, svc, visit, job_id)
    try:
        state = await cancelling.cancel_job(svc, visit.principal, job_id, request.receive)
    except RefusedRequestError as exc:
        return await _job_answer(request, svc, visit, job_id, exc.detail)
    if state is None:
        return await _job_answer(request, svc, visit, job_id)
    return _see_other(f"/console/jobs/{job_id}?done=cancelled")


# ---------------------------------------------------------------- batches


@router.get("/batches")
async def batches_page(request: Request, svc: ServicesDep, tenant: str = "") -> Response:
    visit = await _visit(request, svc)
    principal = visit.principal
    shown = tenant if principal.admin and is_tenant(tenant) else principal.tenant
    rows = await svc.projection.rows(*batch_sql.listing_query(shown, BATCHES_LISTED))
    return page("batches.html", **_common(request, visit, "batches"), batches=rows, tenant=shown)


@router.get("/batches/{batch_id}")
async def batch_page(request: Request, svc: ServicesDep, batch_id: str) -> Response:
    visit = await _visit(request, svc)
    return await _batch_answer(request, svc, visit, batch_id)


async def _batch_answer(
    request: Request, svc: ServicesDep, visit: Visit, batch_id: str, error: str | None = None
) -> Response:
    context = _common(request, visit, "batches")
    found = await batches.find(svc, visit.principal, batch_id)
    if found is None:
        return page("missing.html", status_code=404, **context, what=f"batch {batch_id}")
    counts = found.body.counts
    return page(
        "batch.html",
        **context,
        batch=found.body,
        tenant=found.tenant,
        ended=counts.succeeded + counts.failed + counts.cancelled,
        error=error,
    )


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(request: Request, svc: ServicesDep, batch_id: str) -> Response:
    visit = await _visit(request, svc, Scope.CANCEL)
    await session.checked_form(request, visit)
    try:
        body = await cancelling.cancel_batch(svc, visit.principal, batch_id)
    except RefusedRequestError as exc:
        return await _batch_answer(request, svc, visit, batch_id, exc.detail)
    if body is None:
        return await _batch_answer(request, svc, visit, batch_id)
    return _see_other(f"/console/batches/{batch_id}?done=batch-cancelled")


@router.get("/batches/{batch_id}/results")
async def batch_results(request: Request, svc: ServicesDep, batch_id: str) -> Response:
    visit = await _visit(request, svc)
    found = await batches.find(svc, visit.principal, batch_id)
    if found is None:
        context = _common(request, visit, "batches")
        return page("missing.html", status_code=404, **context, what=f"batch {batch_id}")
    disposition = f'attachment; filename="batch-{batch_id}-results.jsonl"'
    return StreamingResponse(
        await batches.results(svc, found),
        media_type=batches.NDJSON,
        headers={"Content-Disposition": disposition},
    )


# ---------------------------------------------------------------- dead letters


@router.get("/dead-letters")
async def dead_letters_page(
    request: Request,
    svc: ServicesDep,
    redriven: Annotated[list[str] | None, Query()] = None,
) -> Response:
    visit = await _visit(request, svc, Scope.ADMIN)
    letters = [deadletters.body(letter) for letter in await deadletters.letters(svc)]
    done = None
    if redriven is not None:
        # What the redrive before this page did, as it sent it here: shown only when well formed.
        pairs = [item.partition(" ") for item in redriven]
        done = [(ref, job) for ref, _, job in pairs if _REF.match(ref) and is_job_id(job)]
    return page(
        "dead_letters.html",
        **_common(request, visit, "dead-letters"),
        letters=letters,
        redriven=done,
    )


@router.post("/dead-letters/redrive")
async def redrive(request: Request, svc: ServicesDep) -> Response:
    visit = await _visit(request, svc, Scope.ADMIN)
    fields = await session.checked_form(request, visit)
    refs = None if fields.get("all") else [fields.get("ref", "")]
    done = await deadletters.redrive(svc, refs)
    # Sent back to the listing (a reload then sends nothing again), with what was done.
    query = urlencode({"redriven": [f"{d.ref} {d.new_job_id}" for d in done] or [""]}, doseq=True)
    return _see_other(f"/console/dead-letters?{query}")


# ---------------------------------------------------------------- models


@router.get("/models")
async def models_page(request: Request, svc: ServicesDep) -> Response:
    visit = await _visit(request, svc)
    found = model_list(svc.models, svc.default_model())
    pictured = {m.version for m in found.models if _pictured(svc, m.version)}
    return page("models.html", **_common(request, visit, "models"), models=found, pictured=pictured)


def _pictured(svc: ServicesDep, version: str) -> bool:
    try:
        return bool(svc.models.manifest(version).confusion_png)
    except (ModelIntegrityError, UnknownModelVersionError):
        return False


def _picture(svc: ServicesDep, version: str) -> bytes | None:
    try:
        return svc.models.picture(version)
    except (ModelIntegrityError, UnknownModelVersionError):
        return None


@router.get("/models/{version}/confusion.png")
async def confusion_picture(request: Request, svc: ServicesDep, version: str) -> Response:
    await _visit(request, svc)
    picture = _picture(svc, version)
    if picture is None:
        return Response(status_code=404)
    return Response(picture, media_type="image/png", headers={"Cache-Control": "private"})
