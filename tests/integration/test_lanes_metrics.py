"""The log's gauges and the projector's lag over lanes: per partition and kind of lane, the
lanes added up, never a label per tenant."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric

from domain.lanes import BULK, INTERACTIVE
from eventlog.gauges import StreamCollector
from eventlog.lanes import DEFAULT_LANE, Lane
from projector.metrics import LagCollector
from tests.integration.test_lanes_projection import backlog, lane_entries
from tests.integration.test_lanes_retention import consume

ACME, GLOBEX = Lane(BULK, "acme"), Lane(BULK, "globex")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: list[Metric]) -> Samples:
    found = {}
    for family in metrics:
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_the_streams_gauges_add_up_the_lanes_of_each_kind(redis_client, names):
    backlog(redis_client, names, DEFAULT_LANE, 4)
    backlog(redis_client, names, Lane(INTERACTIVE, "acme"), 2)
    backlog(redis_client, names, ACME, 6)
    backlog(redis_client, names, GLOBEX, 3)  # no group yet
    consume(redis_client, names, DEFAULT_LANE)
    consume(redis_client, names, Lane(INTERACTIVE, "acme"), ack_upto=1)
    acme = consume(redis_client, names, ACME, ack_upto=2)
    backlog(redis_client, names, ACME, 5)  # not delivered yet
    found = samples(list(StreamCollector(redis_client, names, [0]).collect()))
    group = names.workers_group
    interactive = labels(partition="0", kind=INTERACTIVE)
    bulk = labels(partition="0", kind=BULK)
    assert found[("inferflow_stream_length", interactive)] == 6
    assert found[("inferflow_stream_length", bulk)] == 6 + 5 + 3
    assert found[("inferflow_dead_letters", labels(partition="0"))] == 0
    with_group = labels(partition="0", kind=INTERACTIVE, group=group)
    bulk_group = labels(partition="0", kind=BULK, group=group)
    assert found[("inferflow_group_pending", with_group)] == 1
    assert found[("inferflow_group_pending", bulk_group)] == 4
    assert found[("inferflow_group_lag", with_group)] == 0
    assert found[("inferflow_group_lag", bulk_group)] == 5  # globex has no group: not counted
    assert found[("inferflow_group_oldest_pending_age_seconds", bulk_group)] >= 0
    assert acme[2] == redis_client.xpending(names.lane(0, ACME), group)["min"]
    assert not any("tenant" in dict(key) for _, key in found)


def test_the_projectors_lag_adds_up_the_lanes_of_each_kind(make_projector, redis_client, names):
    backlog(redis_client, names, DEFAULT_LANE, 4)
    backlog(redis_client, names, ACME, 6)
    positions = make_projector(bulk_read_count=4).catch_up()
    backlog(redis_client, names, ACME, 2)
    backlog(redis_client, names, GLOBEX, 3)  # never projected: a lane the projector has not seen
    found = samples(list(LagCollector(redis_client, names, {0: positions}).collect()))
    interactive = labels(partition="0", kind=INTERACTIVE)
    bulk = labels(partition="0", kind=BULK)
    assert found[("inferflow_projector_lag_entries", interactive)] == 0
    assert found[("inferflow_projector_lag_seconds", interactive)] == 0
    assert found[("inferflow_projector_lag_entries", bulk)] == 2 + 3
    assert found[("inferflow_projector_lag_seconds", bulk)] >= 0
    assert len(lane_entries(redis_client, names, ACME)) == 8
