"""Dead letters over HTTP (GET /v1/admin/dead-letters, POST .../redrive) and in the console:
what `python -m consumer dead-letters` does, with the API's asyncio client.

A letter is taken off its stream before its request is submitted again, so two redrives of one
letter at once submit it once; a submission that fails puts the letter back (under a new entry
id), so a letter is never lost.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.deps import Services
from api.guard import guarded_again
from eventlog import deadletters
from eventlog.deadletters import DeadLetter, normal_ref

EXAMPLE_REF = "0/1795870659202-0"
# As DeadLetter.ref writes them: a partition, a slash, a stream entry id.
REF_PATTERN = r"^[0-9]{1,5}/[0-9]{1,20}-[0-9]{1,20}$"


class DeadLetterBody(BaseModel):
    ref: str = Field(
        description="How to name the letter: PARTITION/ENTRY_ID.", examples=[EXAMPLE_REF]
    )
    partition: int
    job_id: str = Field(description="The job that failed, delivered too often.")
    reason: str = Field(description="Why it was set aside.")
    deliveries: int
    dead_at: str = Field(description="When it was set aside (RFC 3339).")
    tenant: str
    lane: str = Field(description="The lane it was read from, `kind:tenant`.")
    text: str | None = Field(description="The request's text; null when it cannot be read.")
    model_version: str | None


class DeadLetterList(BaseModel):
    items: list[DeadLetterBody] = Field(description="Every letter, partition by partition.")


class Redriven(BaseModel):
    ref: str
    job_id: str = Field(description="The job that failed.")
    new_job_id: str = Field(description="The new job of the same request.")


class RedriveResult(BaseModel):
    redriven: list[Redriven]


def body(letter: DeadLetter) -> DeadLetterBody:
    request = letter.request
    return DeadLetterBody(
        ref=letter.ref,
        partition=letter.partition,
        job_id=letter.job_id,
        reason=letter.reason,
        deliveries=letter.deliveries,
        dead_at=letter.dead_at,
        tenant=letter.lane.tenant,
        lane=letter.lane.name,
        text=request.text if request else None,
        model_version=request.model_version if request else None,
    )


async def letters(svc: Services) -> list[DeadLetter]:
    partitions = range(svc.settings.partitions)
    return await guarded_again(
        "redis",
        svc.timeout_s,
        lambda: deadletters.list_letters_async(svc.redis, svc.settings.names, partitions),
    )


async def redrive(svc: Services, refs: list[str] | None) -> list[Redriven]:
    """Submit again the letters named by `refs` (every letter: None) that can be read; those
    it did, in order."""
    wanted = None if refs is None else {normal_ref(ref) for ref in refs}
    done = []
    for letter in await letters(svc):
        if wanted is not None and letter.ref not in wanted:
            continue
        new_job_id = await _again(svc, letter)
        if new_job_id is not None:
            done.append(Redriven(ref=letter.ref, job_id=letter.job_id, new_job_id=new_job_id))
    return done


async def _again(svc: Services, letter: DeadLetter) -> str | None:
    event = deadletters.request_again(letter)
    if event is None:
        return None
    stream = svc.settings.names.dead_letters(letter.partition)
    taken = await guarded_again(
        "redis", svc.timeout_s, lambda: svc.redis.xdel(stream, letter.entry_id)
    )
    if not taken:  # redriven meanwhile by another request
        return None
    try:
        accepted = await svc.log.submit(event, None, "")
    except BaseException:
        await svc.redis.xadd(stream, letter.fields)  # type: ignore[arg-type]
        raise
    return accepted.job_id
