"""Prometheus metrics of the projector, served on METRICS_PORT (0: not served).

Besides its own counters the projector serves the event log's shape (eventlog.gauges) and its
lag behind the log's head, both sampled at scrape time: a stalled projector still reports a
growing lag, which a gauge it had to update itself would not. A partition's lanes are reported
by kind (interactive, bulk), their values added up (the maximum for ages and times): a label per
tenant would grow without bound.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import redis
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from domain.lanes import KINDS
from eventlog.connection import Client
from eventlog.gauges import StreamCollector
from eventlog.lanes import Lane, known_lanes
from eventlog.names import Names
from eventlog.positions import age_seconds
from readmodel.checkpoints import Checkpoint
from runtime.metrics import serve_metrics

log = logging.getLogger(__name__)

EVENTS_APPLIED = Counter(
    "inferflow_projector_events_total", "Stream entries projected.", ["partition", "kind"]
)
APPLY_SECONDS = Histogram(
    "inferflow_projector_apply_duration_seconds",
    "Time to apply one batch (one PostgreSQL transaction); kind interactive: a batch with "
    "entries of an interactive lane.",
    ["partition", "kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CHECKPOINT = Gauge(
    "inferflow_projector_checkpoint_timestamp_seconds",
    "When Redis appended the last projected entry of the partition's lanes of the kind (its "
    "id's milliseconds, the newest over those lanes), Unix seconds.",
    ["partition", "kind"],
)
END_TO_END_SECONDS = Histogram(
    "inferflow_job_end_to_end_seconds",
    "From a job's submission to its terminal event, observed when that event is projected live.",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


# Where the lanes of each partition this process projects last stood (none before its first
# batch). Written by the partitions' threads, each its own key, a new mapping each time.
POSITIONS: dict[int, Mapping[Lane, Checkpoint]] = {}


@dataclass(slots=True)
class _Lag:
    entries: int = 0
    seconds: float = 0.0


class LagCollector(Collector):
    def __init__(
        self, client: Client, names: Names, positions: Mapping[int, Mapping[Lane, Checkpoint]]
    ) -> None:
        self._redis = client
        self._names = names
        self._positions = positions

    def collect(self) -> Iterator[Metric]:
        entries = GaugeMetricFamily(
            "inferflow_projector_lag_entries",
            "Entries in the partition's lanes of the kind not projected yet.",
            labels=["partition", "kind"],
        )
        seconds = GaugeMetricFamily(
            "inferflow_projector_lag_seconds",
            "Age of the oldest entry not projected yet of the partition's lanes of the kind; "
            "0 when caught up.",
            labels=["partition", "kind"],
        )
        for partition, at in sorted(self._positions.items()):
            try:
                lags = self._partition(partition, at)
            except redis.RedisError as exc:
                log.warning("projector lag unavailable", extra={"error": str(exc)})
                return
            for kind in KINDS:
                lag = lags.get(kind, _Lag())
                entries.add_metric([str(partition), kind], lag.entries)
                seconds.add_metric([str(partition), kind], lag.seconds)
        yield entries
        yield seconds

    def _partition(self, partition: int, at: Mapping[Lane, Checkpoint]) -> dict[str, _Lag]:
        """Each kind's lag, its lanes' added up: two pipelined round trips (the oldest entry
        not projected of every lane, then the count of the lanes behind)."""
        lanes = sorted(set(known_lanes(self._redis, self._names, partition)) | set(at))
        streams = [self._names.lane(partition, lane) for lane in lanes]
        pipe = self._redis.pipeline(transaction=False)
        for lane, stream in zip(lanes, streams, strict=True):
            pipe.xrange(stream, f"({at.get(lane, Checkpoint()).last_entry_id}", "+", count=1)
        oldest = dict(zip(lanes, pipe.execute(), strict=True))
        behind = [lane for lane in lanes if oldest[lane]]
        pipe = self._redis.pipeline(transaction=False)
        for lane in behind:
            pipe.xinfo_stream(self._names.lane(partition, lane))
        infos = dict(zip(behind, pipe.execute() if behind else [], strict=True))
        lags: dict[str, _Lag] = {}
        for lane in behind:
            lag = lags.setdefault(lane.kind, _Lag())
            read = at.get(lane, Checkpoint()).entries_read
            lag.entries += max(infos[lane]["entries-added"] - read, 0)
            lag.seconds = max(lag.seconds, age_seconds(str(oldest[lane][0][0])))
        return lags


def serve(port: int, client: Client, names: Names, partitions: Sequence[int]) -> None:
    """Serve /metrics on `port` from a daemon thread; 0 leaves metrics unserved."""
    if port == 0:
        return
    REGISTRY.register(StreamCollector(client, names, partitions))
    REGISTRY.register(LagCollector(client, names, POSITIONS))
    serve_metrics(port)
