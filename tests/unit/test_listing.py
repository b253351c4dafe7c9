"""GET /v1/jobs's pure parts: the cursor (round trip, tampering, the filters it was made for),
the filters' digest, the query's parameters, the SQL's shape and the Link header."""

from __future__ import annotations

import base64
import hashlib
import string
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError
from starlette.datastructures import URL, QueryParams

from api.errors import RefusedRequestError
from api.listing import ListingQuery, decode_cursor, digest, encode_cursor, next_link
from domain.ids import new_job_id
from domain.job import JobStatus
from readmodel.listing import Filters, Position, page_query

TENANT = "acme"
AT = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)
FILTERS = Filters(statuses=(JobStatus.FAILED,), model_version="spam-tfidf-lr-v1")
MADE_FOR = digest(TENANT, FILTERS)
ALPHABET = string.ascii_letters + string.digits + "-_"


def cursor_at(position: Position | None = None) -> str:
    return encode_cursor(position or Position(AT, new_job_id(3)), MADE_FOR)


def refused(cursor: str, made_for: bytes = MADE_FOR) -> RefusedRequestError:
    with pytest.raises(RefusedRequestError) as caught:
        decode_cursor(cursor, made_for)
    assert caught.value.status == 400
    assert caught.value.slug == "invalid-cursor"
    return caught.value


# The cursor


@pytest.mark.parametrize(
    "created_at",
    [
        AT,
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 12, 6, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_a_cursor_gives_back_the_position_it_was_made_at_to_the_microsecond(created_at):
    position = Position(created_at, new_job_id(7))
    found = decode_cursor(encode_cursor(position, MADE_FOR), MADE_FOR)
    assert found == position  # the same instant, whatever its offset was
    assert found.created_at.tzinfo is not None


def test_rows_tied_on_created_at_get_cursors_of_their_own():
    first, second = (Position(AT, new_job_id()) for _ in range(2))
    assert cursor_at(first) != cursor_at(second)
    assert decode_cursor(cursor_at(second), MADE_FOR).job_id == second.job_id


def test_a_cursor_is_opaque_url_safe_text():
    cursor = cursor_at()
    assert set(cursor) <= set(ALPHABET)
    assert AT.isoformat() not in cursor and "=" not in cursor


def test_every_change_of_one_character_is_refused():
    cursor = cursor_at()
    for at in range(len(cursor)):
        for other in ALPHABET:
            if other != cursor[at]:
                refused(cursor[:at] + other + cursor[at + 1 :])


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "x",
        "not a cursor",
        "é" * 50,
        "A" * 50,
        "A" * 49,
        "A" * 51,
        "A" * 10_000,
        "\x00" * 50,
    ],
)
def test_garbage_is_refused(cursor):
    refused(cursor)


def test_a_cursor_cut_short_or_grown_is_refused():
    cursor = cursor_at()
    refused(cursor[:-1])
    refused(cursor + "A")
    refused(cursor + "==")  # its padding: only the form it was given in


def test_the_standard_alphabets_characters_are_not_taken_for_url_safe_ones():
    cursor = cursor_at(Position(AT, "fbffffff-ffff-8fff-bfff-ffffffffffff"))
    standard = cursor.replace("-", "+").replace("_", "/")
    assert standard != cursor
    refused(standard)


def test_bytes_of_another_version_are_refused_even_with_a_good_checksum():
    raw = bytearray(base64.urlsafe_b64decode(cursor_at() + "=="))
    raw[0] = 2
    raw[-4:] = hashlib.blake2b(bytes(raw[:-4]), digest_size=4, person=b"jobs-cursor").digest()
    refused(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())


def test_a_cursor_sent_with_other_filters_is_refused_and_says_so():
    cursor = cursor_at()
    other = digest(TENANT, Filters(statuses=(JobStatus.SUCCEEDED,)))
    assert "other filters" in refused(cursor, other).detail
    assert "other filters" in refused(cursor, digest(TENANT, Filters())).detail


def test_a_cursor_of_another_tenant_is_refused():
    refused(cursor_at(), digest("globex", FILTERS))


# The filters' digest


def test_the_digest_is_of_the_filters_meaning_not_their_spelling():
    one = Filters(statuses=(JobStatus.QUEUED, JobStatus.STARTED), created_after=AT)
    same = Filters(
        statuses=(JobStatus.STARTED, JobStatus.QUEUED),
        created_after=AT.astimezone(timezone(timedelta(hours=-5))),
    )
    assert digest(TENANT, one) == digest(TENANT, same)
    query = ListingQuery.model_validate({"status": ["started", "queued", "started"]})
    assert query.filters().statuses == (JobStatus.QUEUED, JobStatus.STARTED)


@pytest.mark.parametrize(
    "changed",
    [
        Filters(),
        Filters(statuses=(JobStatus.FAILED,)),
        Filters(statuses=(JobStatus.FAILED, JobStatus.SUCCEEDED), model_version="spam-tfidf-lr-v1"),
        Filters(statuses=(JobStatus.FAILED,), model_version="spam-tfidf-lr-v2"),
        Filters(statuses=(JobStatus.FAILED,), model_version="spam-tfidf-lr-v1", label="spam"),
        Filters(statuses=(JobStatus.FAILED,), model_version="spam-tfidf-lr-v1", batch_id="b"),
        Filters(statuses=(JobStatus.FAILED,), model_version="spam-tfidf-lr-v1", created_after=AT),
        Filters(statuses=(JobStatus.FAILED,), model_version="spam-tfidf-lr-v1", created_before=AT),
    ],
)
def test_any_other_filter_has_another_digest(changed):
    assert digest(TENANT, changed) != MADE_FOR


def test_values_cannot_be_shifted_from_one_filter_to_another():
    assert digest(TENANT, Filters(label="x")) != digest(TENANT, Filters(batch_id="x"))
    assert digest(TENANT, Filters(created_after=AT)) != digest(TENANT, Filters(created_before=AT))


# The query's parameters


def test_defaults_are_the_first_page_of_100_of_every_job():
    query = ListingQuery.model_validate({})
    assert (query.limit, query.cursor, query.filters()) == (100, None, Filters())


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "1001"},
        {"limit": "ten"},
        {"status": ["queued", "done"]},
        {"created_after": "2026-12-06T09:30:00"},  # no offset: which instant?
        {"created_before": "yesterday"},
        {"created_before": "0.5"},  # Unix seconds, to pydantic
        {"created_before": "1733011200"},
        {"created_after": "2026-12-06"},  # a date: midnight where?
        {"created_after": "2026-12-06T09:30:00.1234567Z"},  # finer than PostgreSQL keeps
        {"created_after": "0001-01-01T00:00:00+01:00"},  # no UTC form
        {"label": ""},
        {"model_version": "x" * 256},
        {"stauts": "failed"},  # a misspelt filter would list every job
    ],
)
def test_invalid_parameters_are_refused(params):
    with pytest.raises(ValidationError):
        ListingQuery.model_validate(params)


def test_limits_from_1_to_1000_and_times_with_any_offset_are_taken():
    assert ListingQuery.model_validate({"limit": "1"}).limit == 1
    assert ListingQuery.model_validate({"limit": "1000"}).limit == 1000
    query = ListingQuery.model_validate({"created_after": "2026-12-06T11:30:15.123456+02:00"})
    assert query.filters().created_after == datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)


def test_a_nul_in_a_filter_matches_the_replacement_character_it_was_stored_as():
    query = ListingQuery.model_validate({"label": "a\x00b", "batch_id": "\x00"})
    assert (query.filters().label, query.filters().batch_id) == ("a\ufffdb", "\ufffd")


# The SQL


def test_one_status_is_one_index_range_and_several_are_merged_ranges():
    one, params = page_query(TENANT, Filters(statuses=(JobStatus.FAILED,)), None, 101)
    assert "UNION" not in one and params == [TENANT, "failed", 101]
    two, params = page_query(
        TENANT, Filters(statuses=(JobStatus.STARTED, JobStatus.QUEUED)), None, 11
    )
    assert two.count("UNION ALL") == 1
    assert params == [TENANT, "queued", 11, TENANT, "started", 11, 11]


def test_a_page_after_a_position_compares_the_row_value():
    position = Position(AT, new_job_id())
    sql, params = page_query(TENANT, Filters(label="spam"), position, 101)
    assert "(created_at, job_id) < (%s, %s)" in sql
    assert sql.endswith("ORDER BY created_at DESC, job_id DESC LIMIT %s")
    assert params[-3:-1] == [AT, uuid.UUID(position.job_id)]


# The Link header


def test_the_next_link_keeps_every_parameter_and_replaces_the_cursor():
    query = QueryParams("status=queued&status=started&limit=5&cursor=old")
    link = next_link(URL("http://api.example/v1/jobs?ignored"), query, "NEW_-cursor")
    assert link == (
        '</v1/jobs?status=queued&status=started&limit=5&cursor=NEW_-cursor>; rel="next"'
    )


def test_the_next_link_escapes_what_the_query_held():
    query = QueryParams([("label", "a b&c"), ("created_after", "2026-12-06T09:30:00+02:00")])
    link = next_link(URL("http://x/v1/jobs"), query, "C")
    assert link == (
        "</v1/jobs?label=a+b%26c&created_after=2026-12-06T09%3A30%3A00%2B02%3A00&cursor=C>; "
        'rel="next"'
    )
