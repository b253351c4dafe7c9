"""How the projector's step reads a partition's lanes (interactive first, bulk rounds shared,
then one blocking read over all), and the read model's lanes, without servers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from domain.events import JobRequested, encode
from domain.ids import new_job_id
from domain.job import evolve
from domain.lanes import BULK, INTERACTIVE
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from projector.runner import Projector, bulk_share, entries_read
from projector.settings import ProjectorSettings
from projector.store import LaneBatch
from readmodel import checkpoints, rows, timeline
from readmodel.checkpoints import Checkpoint

NAMES = Names("unit")
ACME_BULK, GLOBEX_BULK = Lane(BULK, "acme"), Lane(BULK, "globex")
ACME_INTERACTIVE = Lane(INTERACTIVE, "acme")


class FakeRedis:
    """The lanes of partition 0, and what each XREAD asked for; replies given in turn."""

    def __init__(self, lanes: list[Lane], replies: list[Any]) -> None:
        self.lanes = {lane.name for lane in lanes if not lane.is_default}
        self.replies = list(replies)
        self.reads: list[tuple[list[str], int, int | None]] = []
        self.lookups = 0

    def smembers(self, key: str) -> set[str]:
        assert key == NAMES.lanes(0)
        self.lookups += 1
        return set(self.lanes)

    def scard(self, key: str) -> int:
        assert key == NAMES.lanes(0)
        return len(self.lanes)

    def xread(self, streams: dict[str, str], count: int, block: int | None) -> Any:
        self.reads.append((list(streams), count, block))
        return self.replies.pop(0) if self.replies else []


class FakeStore:
    partition = 0

    def __init__(self) -> None:
        self.applied: list[list[LaneBatch]] = []

    def checkpoints(self) -> dict[Lane, Checkpoint]:
        return {}

    def apply_lanes(self, batches: list[LaneBatch]) -> tuple[dict[Lane, Checkpoint], list]:
        self.applied.append(batches)
        return {batch.lane: batch.after for batch in batches}, []


def projector(client: FakeRedis, **settings: Any) -> tuple[Projector, FakeStore]:
    options = {"stream_prefix": NAMES.prefix, "read_count": 100, "bulk_read_count": 30}
    store = FakeStore()
    built = Projector(ProjectorSettings(**(options | settings)), client, store)  # type: ignore[arg-type]
    return built, store


def entry(entry_id: str, lane: Lane) -> tuple[str, dict[str, str]]:
    event = JobRequested(
        job_id=new_job_id(),
        occurred_at=datetime.now(UTC),
        text="t",
        model_version="m",
        tenant=lane.tenant,
        lane=lane.kind,
    )
    return entry_id, encode(event)


def stream(lane: Lane) -> str:
    return NAMES.lane(0, lane)


INTERACTIVE_STREAMS = [stream(ACME_INTERACTIVE), stream(DEFAULT_LANE)]
BULK_STREAMS = [stream(ACME_BULK), stream(GLOBEX_BULK)]
LANES = [DEFAULT_LANE, ACME_INTERACTIVE, ACME_BULK, GLOBEX_BULK]


def test_interactive_entries_are_read_and_applied_alone():
    reply = [[stream(ACME_INTERACTIVE), [entry("5-0", ACME_INTERACTIVE)]]]
    client = FakeRedis(LANES, [reply])
    built, store = projector(client)
    after = built.step(built.positions())
    assert client.reads == [(INTERACTIVE_STREAMS, 100, None)]  # no bulk read, no block
    (batches,) = store.applied
    assert [(b.lane, b.after) for b in batches] == [(ACME_INTERACTIVE, Checkpoint("5-0", 1))]
    assert after[ACME_INTERACTIVE] == Checkpoint("5-0", 1)
    assert after[ACME_BULK] == Checkpoint()


def test_bulk_lanes_are_read_when_the_interactive_ones_are_empty_each_a_share():
    reply = [
        [stream(ACME_BULK), [entry("1-0", ACME_BULK), entry("2-0", ACME_BULK)]],
        [stream(GLOBEX_BULK), [entry("1-0", GLOBEX_BULK)]],
    ]
    client = FakeRedis(LANES, [[], reply])
    built, store = projector(client)
    after = built.step(built.positions())
    assert client.reads == [(INTERACTIVE_STREAMS, 100, None), (BULK_STREAMS, 15, None)]
    assert after[ACME_BULK] == Checkpoint("2-0", 2)
    assert after[GLOBEX_BULK] == Checkpoint("1-0", 1)
    assert entries_read(after) == 3
    assert len(store.applied) == 1


def test_after_an_interactive_step_the_bulk_lanes_go_first():
    interactive = [[stream(ACME_INTERACTIVE), [entry("5-0", ACME_INTERACTIVE)]]]
    bulk = [[stream(ACME_BULK), [entry("1-0", ACME_BULK)]]]
    more = [[stream(ACME_INTERACTIVE), [entry("6-0", ACME_INTERACTIVE)]]]
    client = FakeRedis(LANES, [interactive, bulk, more])
    built, store = projector(client)
    positions = built.step(built.positions())
    positions = built.step(positions)  # a steady stream of interactive work cannot starve bulk
    built.step(positions)  # then interactive first again
    assert client.reads == [
        (INTERACTIVE_STREAMS, 100, None),
        (BULK_STREAMS, 15, None),
        (INTERACTIVE_STREAMS, 100, None),
    ]
    assert [[b.lane for b in batches] for batches in store.applied] == [
        [ACME_INTERACTIVE],
        [ACME_BULK],
        [ACME_INTERACTIVE],
    ]


def test_a_bulk_turn_with_nothing_in_bulk_reads_the_interactive_lanes():
    interactive = [[stream(ACME_INTERACTIVE), [entry("5-0", ACME_INTERACTIVE)]]]
    more = [[stream(ACME_INTERACTIVE), [entry("6-0", ACME_INTERACTIVE)]]]
    client = FakeRedis(LANES, [interactive, [], more])
    built, store = projector(client)
    built.step(built.step(built.positions()))
    assert client.reads[1:] == [(BULK_STREAMS, 15, None), (INTERACTIVE_STREAMS, 100, None)]
    assert len(store.applied) == 2


def test_nothing_to_read_looks_for_lanes_then_blocks_over_all_of_them():
    client = FakeRedis(LANES, [])
    built, store = projector(client, read_block_ms=700, lanes_refresh_ms=500)
    positions = built.positions()
    before = client.lookups
    assert built.step(positions) == positions
    assert client.lookups == before + 1  # the lanes came back empty: looked for again
    # Blocking: at most until the next look for lanes; bulk entries in a bulk round's share.
    assert client.reads[-1] == (INTERACTIVE_STREAMS + BULK_STREAMS, 15, 500)
    assert store.applied == []


def test_without_bulk_lanes_the_blocking_read_takes_the_whole_count():
    client = FakeRedis([DEFAULT_LANE], [])
    built, _ = projector(client, read_block_ms=200)
    built.step(built.positions())
    assert client.reads == [([stream(DEFAULT_LANE)], 100, None), ([stream(DEFAULT_LANE)], 100, 200)]


def test_a_lane_registered_before_a_bulk_round_is_read_first():
    reply = [[stream(ACME_INTERACTIVE), [entry("9-0", ACME_INTERACTIVE)]]]
    client = FakeRedis([DEFAULT_LANE, ACME_BULK], [[], reply])
    built, _ = projector(client, lanes_refresh_ms=3_600_000)
    positions = built.positions()
    client.lanes.add(ACME_INTERACTIVE.name)  # a new tenant's first job, while bulk work waits
    after = built.step(positions)
    assert client.reads == [([stream(DEFAULT_LANE)], 100, None), (INTERACTIVE_STREAMS, 100, None)]
    assert after[ACME_INTERACTIVE] == Checkpoint("9-0", 1)


def test_a_lane_registered_later_is_found_when_the_lanes_come_back_empty():
    client = FakeRedis([DEFAULT_LANE], [])
    built, _ = projector(client, lanes_refresh_ms=3_600_000)
    positions = built.step(built.positions(), block_ms=0)
    client.lanes.add(ACME_BULK.name)
    positions = built.step(positions, block_ms=0)
    assert ACME_BULK in positions and ACME_BULK in built.lanes


@pytest.mark.parametrize(
    ("budget", "lanes", "share"), [(256, 1, 256), (256, 3, 85), (2, 5, 1), (10, 0, 10)]
)
def test_a_bulk_round_is_shared_equally_and_gives_each_lane_one_at_least(budget, lanes, share):
    assert bulk_share(budget, lanes) == share


def test_the_settings_of_lanes_have_their_defaults():
    settings = ProjectorSettings()
    assert (settings.bulk_read_count, settings.lanes_refresh_ms) == (256, 1000)


def test_a_lane_batch_moves_its_checkpoint_by_its_entries():
    batch = LaneBatch(ACME_BULK, Checkpoint("3-0", 7), [entry("4-0", ACME_BULK)])
    assert batch.after == Checkpoint("4-0", 8)
    assert LaneBatch(ACME_BULK, Checkpoint("3-0", 7), []).after == Checkpoint("3-0", 7)


def test_checkpoint_rows_name_their_lanes():
    found = checkpoints.by_lane([("bulk:acme", "5-0", 5), ("nonsense", "1-0", 1)])
    assert found == {ACME_BULK: Checkpoint("5-0", 5)}
    assert checkpoints.by_partition_and_lane([(2, "interactive:default", "1-0", 1)]) == {
        2: {DEFAULT_LANE: Checkpoint("1-0", 1)}
    }


def test_a_jobs_lane_from_its_kind_and_tenant():
    assert timeline.lane_of(BULK, "acme") == ACME_BULK
    assert timeline.lane_of("nonsense", "acme") == DEFAULT_LANE
    assert timeline.lane_of(BULK, "Not A Tenant") == DEFAULT_LANE


def test_a_rows_lane_is_the_jobs_kind_both_ways():
    requested = JobRequested(
        job_id=new_job_id(),
        occurred_at=datetime.now(UTC),
        text="t",
        model_version="m",
        tenant="acme",
        lane=BULK,
    )
    state = evolve(None, requested)
    row = rows.to_row(state, "1-0")
    assert (row["tenant"], row["lane"]) == ("acme", BULK)
    assert rows.to_state(row) == state
    # A row announced by a projector from before lanes: an interactive job.
    old = {key: value for key, value in row.items() if key != "lane"}
    assert rows.to_state(old) == replace(state, lane=INTERACTIVE)
