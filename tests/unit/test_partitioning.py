"""Which partitions a reader serves, and where new jobs go."""

from __future__ import annotations

import random
from collections import Counter
from itertools import pairwise

import pytest

from domain.ids import new_job_id, partition_of
from eventlog.names import Names
from eventlog.placement import RUN, Placement
from runtime.settings import served_partitions


@pytest.mark.parametrize(
    ("chosen", "served"),
    [("", (0, 1, 2, 3)), ("2", (2,)), ("0,2", (0, 2)), ("1-3", (1, 2, 3)), (" 3, 0-1 ", (0, 1, 3))],
)
def test_a_reader_serves_what_it_is_given_or_every_partition(chosen, served):
    assert served_partitions(chosen, 4) == served


@pytest.mark.parametrize("chosen", ["4", "-1", "0,7", "2-9"])
def test_a_partition_outside_the_log_is_refused(chosen):
    with pytest.raises(ValueError):
        served_partitions(chosen, 4)


def test_single_jobs_spread_evenly_over_the_partitions():
    placement = Placement(4, random.Random(7))
    spread = Counter(partition_of(placement.job_id()) for _ in range(8000))
    assert sorted(spread) == [0, 1, 2, 3]
    assert min(spread.values()) > 1800


def test_a_small_batch_goes_to_one_partition_and_a_large_one_everywhere():
    placement = Placement(8)
    assert len({partition_of(job_id) for job_id in placement.job_ids(RUN - 1)}) == 1
    spread = Counter(partition_of(job_id) for job_id in placement.job_ids(8000))
    assert sorted(spread) == list(range(8)) and set(spread.values()) == {1000}
    # Runs: each partition's items are one contiguous stretch of the batch.
    ids = placement.job_ids(300)
    changes = sum(partition_of(a) != partition_of(b) for a, b in pairwise(ids))
    assert changes == 300 // RUN - 1


def test_a_partitions_keys_share_its_hash_tag_and_a_keys_record_has_its_own():
    names = Names("inferflow")
    job = new_job_id(3)
    tag = "{inferflow:p3}"
    assert names.events(3).startswith(tag) and names.job(job).startswith(tag)
    assert names.dead_letters(3).startswith(tag)
    assert names.idempotency("abc") == "inferflow:idempotency:{abc}"


def test_elsewhere_names_every_other_partition_once():
    placement = Placement(5, random.Random(3))
    for partition in range(5):
        others = placement.elsewhere(partition)
        assert sorted(others) == [p for p in range(5) if p != partition]
    assert Placement(1).elsewhere(0) == []
