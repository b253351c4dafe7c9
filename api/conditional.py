"""A job's answer to GET /v1/jobs/{job_id} as bytes with its entity tag, and conditional reads
(RFC 9110: `If-None-Match` -> 304 Not Modified).

The tag is weak (`W/"..."`): it names the job's state (status, attempts, retries, when it last
changed), and two answers of one state mean the same even when they were rendered apart (from
the projection, or from the log before it). Every event that changes a job changes one of those
fields, so a new state has a new tag; a terminal job's state, and so its tag, never changes.
The rendered body is what the route answers with, so a conditional read that matches costs no
rendering, and a cached terminal job (api.terminal) is answered as stored.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from fastapi import Response

from api.schemas import JobBody
from domain.job import JobState

ETAG = "ETag"
IF_NONE_MATCH = "if-none-match"
RETRY_AFTER = "Retry-After"
MEDIA_TYPE = "application/json"

# The fields of the body are part of what a tag names: an API that answers with other fields
# gives other tags, so a client never keeps a body of the old shape on a 304.
_SHAPE = ",".join(JobBody.model_fields).encode()
# An entity-tag (RFC 9110 section 8.8.3); its opaque part may hold commas, so a list is not
# split on them.
_ENTITY_TAG = re.compile(r'(?:W/)?"([^"]*)"')


@dataclass(frozen=True, slots=True)
class Rendered:
    """A job's answer: its tenant (for the read's check), tag and JSON body."""

    tenant: str
    etag: str
    body: bytes
    terminal: bool


def entity_tag(state: JobState) -> str:
    digest = hashlib.blake2b(_SHAPE, digest_size=8)
    changed = f"{state.status.value}|{state.attempts}|{state.retry_count}|{state.updated_at}"
    digest.update(changed.encode())
    return f'W/"{digest.hexdigest()}"'


def render(state: JobState) -> Rendered:
    """The body FastAPI would send for `JobBody.of(state)`, rendered once, without its
    validating the model again."""
    body = JobBody.of(state).model_dump_json().encode()
    return Rendered(state.tenant, entity_tag(state), body, state.status.is_terminal)


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for this
    header), or is `*` (the job exists)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _ENTITY_TAG.fullmatch(etag)
    opaque = wanted.group(1) if wanted else etag
    return opaque in _ENTITY_TAG.findall(if_none_match)


def answer(rendered: Rendered, if_none_match: str | None, retry_after_s: int) -> Response:
    """200 with the body, or 304 without one when the client holds this state already; an
    unfinished job's answer says when to ask again (`retry_after_s`, 0: not said)."""
    headers = {ETAG: rendered.etag}
    if retry_after_s > 0 and not rendered.terminal:
        headers[RETRY_AFTER] = str(retry_after_s)
    if none_match(if_none_match, rendered.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendered.body, media_type=MEDIA_TYPE, headers=headers)
