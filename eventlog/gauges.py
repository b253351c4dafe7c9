"""The event log's shape, sampled from Redis when Prometheus scrapes: length, group lag and
pending entries, the age of the oldest pending entry, the dead-letter stream's length.

Sampled rather than counted, so every process that serves it reports the same truth, and a
stalled consumer still shows up (nothing it would have to do itself).

A partition's log is several streams, its lanes (eventlog.lanes): the gauges add up the lanes of
each kind (interactive, bulk) of each partition, and take the oldest of their pending entries.
Tenants are never a label: their number has no bound, and a time series each would not do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from domain.lanes import KINDS
from eventlog.connection import Client
from eventlog.lanes import Lane, known_lanes, known_lanes_async
from eventlog.names import Names
from eventlog.positions import age_seconds, earliest

log = logging.getLogger(__name__)

# A partition's samples: (metric name, kind or None for the partition's own) -> value.
Samples = dict[tuple[str, str | None], float]


class StreamCollector(Collector):
    """Every gauge once per partition and kind of lane (the dead letters once per partition),
    labelled with them."""

    def __init__(self, client: Client, names: Names, partitions: Sequence[int]) -> None:
        self._redis = client
        self._names = names
        self._partitions = tuple(partitions)

    def collect(self) -> Iterator[Metric]:
        try:
            samples = [self._sample(p) for p in self._partitions]
        except redis.RedisError as exc:
            # A scrape must still answer (with the process's own metrics) while Redis is down.
            log.warning("stream metrics unavailable", extra={"error": str(exc)})
            return
        for name, doc, labels in _FAMILIES:
            by_kind = "kind" in labels
            family = GaugeMetricFamily(name, doc, labels=["partition", *labels])
            for partition, sample in zip(self._partitions, samples, strict=True):
                for kind in KINDS if by_kind else (None,):
                    value = sample.get((name, kind))
                    if value is None:
                        continue
                    values = {"partition": str(partition), "kind": kind or ""}
                    values["group"] = self._names.workers_group
                    family.add_metric([values[label] for label in ["partition", *labels]], value)
            yield family

    def _sample(self, partition: int) -> Samples:
        """One partition's gauges, in two pipelined round trips (`Reading`)."""
        reading = Reading(self._names, partition, known_lanes(self._redis, self._names, partition))
        pipe = self._redis.pipeline(transaction=False)
        reading.ask_lengths(pipe)
        lengths = pipe.execute(raise_on_error=False)
        pipe = reading.ask_oldest(self._redis.pipeline(transaction=False), lengths)
        return reading.sample(pipe.execute() if reading.pending else [])


async def sample_async(client: Any, names: Names, partition: int) -> Samples:
    """One partition's gauges read with an asyncio client (the API's overview)."""
    reading = Reading(names, partition, await known_lanes_async(client, names, partition))
    pipe = client.pipeline(transaction=False)
    reading.ask_lengths(pipe)
    lengths = await pipe.execute(raise_on_error=False)
    pipe = reading.ask_oldest(client.pipeline(transaction=False), lengths)
    return reading.sample(await pipe.execute() if reading.pending else [])


class Reading:
    """A partition's gauges in two pipelined round trips, for a blocking or an asyncio client
    alike: every lane's length and groups (and the dead letters), then the oldest pending entry
    of the lanes that have some."""

    def __init__(self, names: Names, partition: int, lanes: Sequence[Lane]) -> None:
        self._names = names
        self._partition = partition
        self._lanes = list(lanes)
        self._groups: dict[Lane, dict[str, Any]] = {}
        self._sample: Samples = {}
        self.pending: list[Lane] = []

    def ask_lengths(self, pipe: Any) -> None:
        names = self._names
        pipe.xlen(names.dead_letters(self._partition))
        for lane in self._lanes:
            stream = names.lane(self._partition, lane)
            pipe.xlen(stream)
            pipe.xinfo_groups(stream)

    def ask_oldest(self, pipe: Any, replies: Sequence[Any]) -> Any:
        """Fold the replies of `ask_lengths`; queue on `pipe` the reads of the oldest pending
        entries, of the lanes in `pending` (none: nothing to send)."""
        # A lane without a stream yet (or a group) answers XINFO with an error: no group.
        sample: Samples = {("inferflow_dead_letters", None): _number(replies[0])}
        for kind in KINDS:
            sample[("inferflow_stream_length", kind)] = 0.0
        for i, lane in enumerate(self._lanes):
            length, found = replies[1 + 2 * i], replies[2 + 2 * i]
            _add(sample, "inferflow_stream_length", lane.kind, _number(length))
            group = self._group(found)
            if group is not None:
                self._groups[lane] = group
        self._sample = sample
        self.pending = [lane for lane, group in self._groups.items() if group["pending"]]
        for lane in self.pending:
            pipe.xpending(self._names.lane(self._partition, lane), self._names.workers_group)
        return pipe

    def sample(self, replies: Sequence[Any]) -> Samples:
        """The partition's gauges, given the replies of `ask_oldest`'s reads."""
        sample, groups = self._sample, self._groups
        oldest = dict(zip(self.pending, replies, strict=True))
        for kind in KINDS:
            of_kind = [lane for lane in groups if lane.kind == kind]
            if not of_kind:
                continue
            lags: list[int | None] = [groups[lane].get("lag") for lane in of_kind]
            # None when Redis cannot tell for a lane (after deletions): no sample for the kind.
            known = [lag for lag in lags if lag is not None]
            if len(known) == len(lags):
                sample[("inferflow_group_lag", kind)] = float(sum(known))
            sample[("inferflow_group_pending", kind)] = float(
                sum(groups[lane]["pending"] for lane in of_kind)
            )
            mins = [oldest[lane]["min"] for lane in of_kind if oldest.get(lane, {}).get("min")]
            sample[("inferflow_group_oldest_pending_age_seconds", kind)] = (
                age_seconds(earliest(*mins)) if mins else 0.0
            )
        return sample

    def _group(self, groups: Any) -> dict[str, Any] | None:
        if isinstance(groups, Exception):
            if isinstance(groups, redis.ResponseError):  # no stream yet
                return None
            raise groups
        return next((g for g in groups if g["name"] == self._names.workers_group), None)


def _number(reply: Any) -> float:
    if isinstance(reply, Exception):
        raise reply
    return float(reply)


def _add(sample: Samples, name: str, kind: str, value: float) -> None:
    sample[(name, kind)] = sample.get((name, kind), 0.0) + value


_FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("inferflow_stream_length", "Entries in the partition's lanes of the kind.", ("kind",)),
    ("inferflow_dead_letters", "Entries in the partition's dead-letter stream.", ()),
    (
        "inferflow_group_lag",
        "Entries of the partition's lanes of the kind the consumer group has not been "
        "delivered yet.",
        ("kind", "group"),
    ),
    (
        "inferflow_group_pending",
        "Entries of the partition's lanes of the kind delivered to a consumer and not "
        "acknowledged yet.",
        ("kind", "group"),
    ),
    (
        "inferflow_group_oldest_pending_age_seconds",
        "Age (since it was appended) of the oldest unacknowledged entry of the partition's "
        "lanes of the kind; 0 when none.",
        ("kind", "group"),
    ),
)
