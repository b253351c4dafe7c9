from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.ids import MAX_PARTITIONS, is_job_id, new_job_id, partition_of


def test_job_ids_are_version_8_uuids():
    value = uuid.UUID(new_job_id())
    assert value.version == 8
    assert value.variant == uuid.RFC_4122


@given(st.integers(0, MAX_PARTITIONS - 1), st.integers(0, (1 << 48) - 1))
def test_a_job_id_names_its_partition(partition, ms):
    job_id = new_job_id(partition, now_ms=ms)
    assert is_job_id(job_id)
    assert partition_of(job_id) == partition
    assert uuid.UUID(job_id).int >> 80 == ms


def test_the_partition_reads_off_the_third_group():
    assert new_job_id(3).split("-")[2] == "8003"
    assert new_job_id(0x2A7).split("-")[2] == "82a7"


def test_ids_from_before_partitions_are_partition_0():
    # A UUIDv7 whose rand_a bits, read as a partition, would say 0xfff.
    assert partition_of("01931f2e-8c4d-7fff-bd2a-6c1e9f0a4b3c") == 0
    assert partition_of(str(uuid.uuid4())) == 0


@pytest.mark.parametrize("partition", [-1, MAX_PARTITIONS])
def test_a_partition_outside_twelve_bits_is_refused(partition):
    with pytest.raises(ValueError):
        new_job_id(partition)


def test_job_ids_sort_by_time():
    ids = [new_job_id(p, now_ms=ms) for p, ms in ((5, 1_000), (0, 2_000), (1, 3_000))]
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
