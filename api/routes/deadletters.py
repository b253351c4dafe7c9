"""/v1/admin/dead-letters: the requests set aside after too many deliveries, listed and
submitted again (api.deadletters). Admin keys only: a letter may be any tenant's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from api import deadletters
from api.deadletters import DeadLetterList, RedriveResult
from api.deps import Admin, ServicesDep
from api.openapi import SERVER_ERROR, example, problem_response
from api.responses import guarded_by, unavailable
from api.schemas import UnprocessableProblem

router = APIRouter(prefix="/v1/admin/dead-letters", tags=["admin"])

Partition = Annotated[int, Path(ge=0, description="The letter's partition.")]
EntryId = Annotated[
    str,
    Path(
        pattern=r"^[0-9]{1,20}-[0-9]{1,20}$",
        description="The letter's entry id in its partition's dead-letter stream.",
        examples=["1795870659202-0"],
    ),
]

LIST: dict[int | str, dict[str, Any]] = {
    **guarded_by("admin"),
    503: unavailable("Redis did not answer."),
    **SERVER_ERROR,
}
REDRIVE_ALL: dict[int | str, dict[str, Any]] = {
    **guarded_by("admin"),
    503: unavailable(
        "Redis did not answer; the letters redriven before it stopped are new jobs already, "
        "the others are still letters: sending the request again redrives those"
    ),
    **SERVER_ERROR,
}
REDRIVE_ONE: dict[int | str, dict[str, Any]] = {
    **REDRIVE_ALL,
    404: problem_response(
        "No such letter (redriven already, or never written), or its request cannot be read.",
        example(404, "http-404", "Not Found", f"no dead letter {deadletters.EXAMPLE_REF}"),
    ),
    422: problem_response(
        "The partition is not a number, or the entry id not a stream entry id (`<ms>-<seq>`).",
        example(
            422,
            "validation-error",
            "Invalid request",
            "path.entry_id: String should match pattern '^[0-9]{1,20}-[0-9]{1,20}$'",
            errors=[
                {
                    "field": "path.entry_id",
                    "message": "String should match pattern '^[0-9]{1,20}-[0-9]{1,20}$'",
                    "type": "string_pattern_mismatch",
                }
            ],
        ),
        model=UnprocessableProblem,
    ),
}


@router.get(
    "",
    response_model=DeadLetterList,
    summary="List dead letters",
    description="Every request set aside because it was delivered more than MAX_DELIVERIES "
    "times (its job failed with DeliveryLimitExceededError), of every partition: why, when, "
    "how often delivered, and the request.",
    response_description="The letters.",
    responses=LIST,
)
async def list_dead_letters(svc: ServicesDep, _admin: Admin) -> DeadLetterList:
    return DeadLetterList(items=[deadletters.body(one) for one in await deadletters.letters(svc)])


@router.post(
    "/redrive",
    response_model=RedriveResult,
    summary="Redrive every dead letter",
    description="Submits each letter's request again as a new job, in the partition and lane "
    "it came from, and removes the letter. Letters whose request cannot be read stay.",
    response_description="The letters redriven and their new jobs.",
    responses=REDRIVE_ALL,
)
async def redrive_all(svc: ServicesDep, _admin: Admin) -> RedriveResult:
    return RedriveResult(redriven=await deadletters.redrive(svc, None))


@router.post(
    "/{partition}/{entry_id}/redrive",
    response_model=RedriveResult,
    summary="Redrive a dead letter",
    description="Submits the letter's request again as a new job, in the partition and lane it "
    "came from, and removes the letter. The letter is named as listed: `ref` is "
    "`PARTITION/ENTRY_ID`.",
    response_description="The letter redriven and its new job.",
    responses=REDRIVE_ONE,
)
async def redrive_one(
    partition: Partition, entry_id: EntryId, svc: ServicesDep, _admin: Admin
) -> RedriveResult:
    ref = f"{partition}/{entry_id}"
    done = await deadletters.redrive(svc, [ref])
    if not done:
        raise HTTPException(404, f"no dead letter {ref}")
    return RedriveResult(redriven=done)
