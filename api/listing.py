"""GET /v1/jobs: the query's parameters, the opaque cursor between its pages, and the page.

A cursor is where the page it came with ended (that row's created_at and job_id) and a digest
of the tenant and the filters it was made for, with a checksum over both, as base64url. It
grants nothing: any position it could name is one of the caller's own jobs, which a
`created_before` would reach as well, so it is not signed with a secret; the checksum and the
digest are there to turn a mangled cursor, or one sent with other filters than its own (whose
position would mean something else), into a 400 that says so instead of a wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import URL, QueryParams

from api.deps import Services
from api.errors import RefusedRequestError
from api.schemas import JobBody
from domain.job import JobStatus
from readmodel.listing import Filters, Position, last_position, page_query
from readmodel.rows import storable, to_state

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FILTER_CHARS = 255
CURSOR_PARAMETER = "cursor"

_VERSION = 1
# version, created_at (µs since the epoch), job_id (16 bytes), digest of the filters.
_POSITION = struct.Struct(">Bq16s8s")
_CHECK_BYTES = 4
_CURSOR_BYTES = _POSITION.size + _CHECK_BYTES
# _CURSOR_BYTES in base64url without padding.
_CURSOR_PATTERN = re.compile(f"[A-Za-z0-9_-]{{{math.ceil(_CURSOR_BYTES * 4 / 3)}}}")
_NOT_OURS = "The cursor is not one this API gave: send `next_cursor` as it came."
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,6})?([Zz]|[+-]\d\d:\d\d)")


class ListingQuery(BaseModel):
    """The query parameters of GET /v1/jobs. An unknown one is refused (422), not ignored: a
    misspelt filter would otherwise list every job."""

    model_config = ConfigDict(extra="forbid")

    status: list[JobStatus] = Field(
        default_factory=list,
        description="Only jobs in this status. Repeat it for any of several "
        "(`status=queued&status=started`: the unfinished ones).",
    )
    model_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_CHARS,
        description="Only jobs submitted for this model version.",
    )
    label: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_CHARS,
        description="Only succeeded jobs whose result has this label.",
    )
    batch_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_CHARS,
        description="Only the jobs of this batch.",
    )
    created_after: AwareDatetime | None = Field(
        default=None,
        description="Only jobs created at or after this time (RFC 3339, with its offset).",
        examples=["2026-12-01T00:00:00Z"],
    )
    created_before: AwareDatetime | None = Field(
        default=None,
        description="Only jobs created before this time (RFC 3339, with its offset).",
        examples=["2026-12-02T00:00:00Z"],
    )
    limit: int = Field(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Jobs per page at most."
    )
    cursor: str | None = Field(
        default=None,
        description="The `next_cursor` of the page before, sent with the same filters; "
        "without it, the first page.",
    )

    @field_validator("created_after", "created_before", mode="before")
    @classmethod
    def _rfc3339(cls, moment: Any) -> Any:
        # Pydantic would also take a number (Unix seconds) or a date alone.
        text = isinstance(moment, str) and _RFC3339.fullmatch(moment)
        if not (text or isinstance(moment, datetime)):
            raise ValueError(
                "expected an RFC 3339 time with its offset and at most 6 fractional digits, "
                "e.g. 2026-12-01T00:00:00Z"
            )
        return moment

    @field_validator("created_after", "created_before")
    @classmethod
    def _in_utc(cls, moment: datetime | None) -> datetime | None:
        # In UTC now: the same instant written with another offset is the same filter, and a
        # time next to year 1 or 9999 that has no UTC form is refused here, not at the query.
        try:
            return None if moment is None else moment.astimezone(UTC)
        except OverflowError:
            raise ValueError("the time is out of range") from None

    def filters(self) -> Filters:
        return Filters(
            statuses=tuple(sorted(set(self.status))),
            # A NUL cannot be stored: the projection holds U+FFFD in its place.
            model_version=storable(self.model_version),
            label=storable(self.label),
            batch_id=storable(self.batch_id),
            created_after=self.created_after,
            created_before=self.created_before,
        )


class JobPage(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [JobBody.model_json_schema()["examples"][0]],
                    "next_cursor": "AQAGYVV8mPyUAaIiLC9bdy-wi8mIzcC7Y8oZotqVgBIv0M6sQw",
                }
            ]
        }
    )

    items: list[JobBody] = Field(description="The jobs, newest first.")
    next_cursor: str | None = Field(
        description="Where the next page starts: send it as `cursor` with the same filters. "
        "Null on the last page."
    )


def digest(tenant: str, filters: Filters) -> bytes:
    """8 bytes that differ, but for a 2**-64 chance, between any two (tenant, filters)."""
    canonical = [
        tenant,
        sorted({status.value for status in filters.statuses}),
        filters.model_version,
        filters.label,
        filters.batch_id,
        _instant(filters.created_after),
        _instant(filters.created_before),
    ]
    text = json.dumps(canonical, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8, person=b"jobs-filters").digest()


def _instant(moment: datetime | None) -> int | None:
    return None if moment is None else _micros(moment)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _check(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECK_BYTES, person=b"jobs-cursor").digest()


def encode_cursor(position: Position, filters_digest: bytes) -> str:
    """The cursor of a page that ended at `position`, for the filters of `filters_digest`."""
    job_id = uuid.UUID(position.job_id).bytes
    payload = _POSITION.pack(_VERSION, _micros(position.created_at), job_id, filters_digest)
    return _text(payload + _check(payload))


def decode_cursor(cursor: str, filters_digest: bytes) -> Position:
    """The position `cursor` names; RefusedRequestError (400) for a cursor this API did not
    make (or made for other filters, or another tenant)."""
    raw = _cursor_bytes(cursor)
    payload, check = raw[: _POSITION.size], raw[_POSITION.size :]
    version, micros, job_id, made_for = _POSITION.unpack(payload)
    if not hmac.compare_digest(check, _check(payload)) or version != _VERSION:
        raise _invalid_cursor(_NOT_OURS)
    if not hmac.compare_digest(made_for, filters_digest):
        raise _invalid_cursor(
            "The cursor was given for other filters (or another tenant's key): send it with the "
            "same filters as the request whose page gave it, or start again without a cursor."
        )
    try:
        created_at = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise _invalid_cursor("The cursor's position is out of range.") from None
    return Position(created_at, str(uuid.UUID(bytes=job_id)))


def _cursor_bytes(cursor: str) -> bytes:
    # The base64url alphabet only: the decoders skip or translate other characters.
    if not _CURSOR_PATTERN.fullmatch(cursor):
        raise _invalid_cursor(_NOT_OURS)
    raw = base64.urlsafe_b64decode(cursor + "==")
    # The last character carries bits the bytes do not use: only the form we wrote is ours.
    if _text(raw) != cursor:
        raise _invalid_cursor(_NOT_OURS)
    return raw


def _text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _invalid_cursor(detail: str) -> RefusedRequestError:
    return RefusedRequestError("invalid-cursor", "Invalid cursor", detail)


def next_link(url: URL, query: QueryParams, cursor: str) -> str:
    """The Link header value (RFC 8288) of the next page: this request's path and parameters
    with `cursor` replaced, as a reference relative to the request's own URL."""
    kept: list[tuple[str, Any]] = [
        (name, value) for name, value in query.multi_items() if name != CURSOR_PARAMETER
    ]
    kept.append((CURSOR_PARAMETER, cursor))
    return f'<{url.path}?{urlencode(kept)}>; rel="next"'


async def read_page(svc: Services, tenant: str, query: ListingQuery) -> JobPage:
    """A page of `tenant`'s jobs as `query` asks: its filters, from its cursor."""
    filters = query.filters()
    made_for = digest(tenant, filters)
    after = None if query.cursor is None else decode_cursor(query.cursor, made_for)
    # One row more than the page: whether there is a next page, without a count.
    sql, params = page_query(tenant, filters, after, query.limit + 1)
    rows = await svc.projection.rows(sql, params)
    page = rows[: query.limit]
    more = len(rows) > query.limit
    return JobPage(
        items=[JobBody.of(to_state(row)) for row in page],
        next_cursor=encode_cursor(last_position(page), made_for) if more else None,
    )
