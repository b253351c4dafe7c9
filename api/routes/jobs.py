"""GET /v1/jobs: a tenant's jobs, newest first, a page at a time, filtered; and GET
/v1/jobs/{job_id}: a job as the projection (or, before it, the log) shows it, at once or once it
is terminal (`?wait=`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from api import answers, conditional
from api.deps import Reader, ServicesDep
from api.listing import MAX_LIMIT, JobPage, ListingQuery, next_link, read_page
from api.openapi import SERVER_ERROR, example, problem_response
from api.params import JobId, Wait
from api.responses import POLL_JOB, READ_JOB, guarded_by
from api.schemas import JobBody, UnprocessableProblem
from domain.ids import is_job_id

router = APIRouter()

LIST_JOBS: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "Link": {
                "description": 'RFC 8288: `<...>; rel="next"`, the URL of the next page (this '
                "request's with `cursor` set), relative to this one's. Absent on the last page.",
                "schema": {"type": "string"},
            }
        }
    },
    400: problem_response(
        "The cursor is not one this API gave, or was given with other filters.",
        example(
            400,
            "invalid-cursor",
            "Invalid cursor",
            "The cursor is not one this API gave: send `next_cursor` as it came.",
        ),
    ),
    422: problem_response(
        "A parameter is not valid: an unknown status, a time without its offset, a limit "
        f"outside 1 to {MAX_LIMIT}, or a parameter this route does not know.",
        example(
            422,
            "validation-error",
            "Invalid request",
            f"query.limit: Input should be less than or equal to {MAX_LIMIT}",
            errors=[
                {
                    "field": "query.limit",
                    "message": f"Input should be less than or equal to {MAX_LIMIT}",
                    "type": "less_than_equal",
                }
            ],
        ),
        model=UnprocessableProblem,
    ),
    **guarded_by("read"),
    # Redis as well: the request is charged to its rate limits there.
    503: READ_JOB[503],
    **SERVER_ERROR,
}


@router.get(
    "/v1/jobs",
    response_model=JobPage,
    summary="List jobs",
    description="The caller's tenant's jobs, newest first (by `created_at`, then `job_id`), "
    "a page at a time. Filters combine: a job is listed when it passes every filter given, "
    "and `status`, repeated, is any of its values. Pages are keyset pages: `next_cursor` "
    "names where this page ended, and the next page (the `cursor` parameter, with the same "
    "filters, or the URL of the `Link` header) starts right below it. Paging is complete and "
    "stable while jobs keep arriving: a new job sorts above the first page, so the pages after "
    "it never shift, and every job is listed once. A job is listed once the projector has it "
    "(milliseconds after its 202); a status filter sees each job's status when its page is "
    "read.",
    response_description="A page of jobs.",
    responses=LIST_JOBS,
)
async def list_jobs(
    query: Annotated[ListingQuery, Query()],
    request: Request,
    response: Response,
    svc: ServicesDep,
    principal: Reader,
) -> JobPage:
    # Always the caller's tenant only, an admin's too: a listing spans no tenants.
    page = await read_page(svc, principal.tenant, query)
    if page.next_cursor is not None:
        response.headers["Link"] = next_link(request.url, request.query_params, page.next_cursor)
    return page


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobBody,
    summary="Read a job",
    description="The job as the projection shows it; a job the projector has not reached yet "
    "is read from its JobRequested event (status `queued`), so a read right after a 202 never "
    "gives 404. Another tenant's job is 404, exactly like an id that does not exist. With "
    "`wait`, a long-poll: the answer waits until the job is terminal (woken by "
    "the projector, not by polling) or the time runs out, and is 200 either way. Every answer "
    "carries an `ETag` of the job's state: sent back in `If-None-Match`, it is answered 304 "
    "without a body while the state is unchanged. A job that has not ended is answered with "
    "`Retry-After` (seconds) when read without `wait`: poll no sooner, or long-poll instead.",
    response_description="The job.",
    responses=POLL_JOB,
)
async def get_job(
    job_id: JobId, request: Request, svc: ServicesDep, principal: Reader, wait: Wait = 0
) -> Response:
    # Checked first so that arbitrary strings never reach PostgreSQL's uuid column.
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    wait_s = min(wait, svc.settings.max_wait_s)
    if wait_s > 0:
        rendered = await answers.within(svc, principal, job_id, wait_s, request.receive)
    else:
        rendered = await answers.current(svc, principal, job_id)
    if rendered is None:
        raise HTTPException(404, f"no job {job_id}")
    # A long-poll's answer comes when it should: its client asks again at once.
    retry_after_s = 0 if wait > 0 else svc.settings.poll_retry_after_s
    # Sent several times, a list header is one list (RFC 9110 section 5.3).
    if_none_match = ", ".join(request.headers.getlist(conditional.IF_NONE_MATCH))
    # Rendered once (api.conditional): FastAPI would validate a model again, then encode it.
    return conditional.answer(rendered, if_none_match, retry_after_s)
