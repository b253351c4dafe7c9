from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from domain.ids import is_job_id, new_job_id


def test_job_ids_are_uuid7():
    value = uuid.UUID(new_job_id())
    assert value.version == 7
    assert value.variant == uuid.RFC_4122


def test_job_ids_sort_by_time():
    ids = [new_job_id(now_ms=ms) for ms in (1_000, 2_000, 3_000)]
    assert ids == sorted(ids)


def test_job_ids_are_unique():
    assert len({new_job_id() for _ in range(10_000)}) == 10_000


def test_embedded_time():
    value = uuid.UUID(new_job_id(now_ms=1_764_000_000_000))
    assert value.int >> 80 == 1_764_000_000_000


def test_only_canonical_ids_are_job_ids():
    job_id = new_job_id()
    assert is_job_id(job_id)
    assert not is_job_id(job_id.upper())
    assert not is_job_id(job_id.replace("-", ""))
    assert not is_job_id("not-a-uuid")
    assert not is_job_id("")
    assert not is_job_id(job_id + "\n")
    assert not is_job_id("{" + job_id + "}")
    assert not is_job_id("urn:uuid:" + job_id)


def _canonical(candidate: str) -> bool:
    try:
        return str(uuid.UUID(candidate)) == candidate
    except ValueError:
        return False


@given(
    st.one_of(
        st.uuids().map(str),
        st.uuids().map(lambda u: str(u).upper()),
        st.uuids().map(lambda u: u.hex),
        st.text(alphabet="0123456789abcdefABCDEF-{}\n urn:", max_size=45),
        st.text(max_size=40),
    )
)
def test_a_job_id_is_exactly_what_uuid_writes(candidate):
    assert is_job_id(candidate) == _canonical(candidate)
