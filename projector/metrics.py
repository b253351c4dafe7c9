"""Prometheus metrics of the projector, served on METRICS_PORT (0: not served).

Besides its own counters the projector serves the event log's shape (infra.streamstats) and its
lag behind the log's head, both sampled at scrape time: a stalled projector still reports a
growing lag, which a gauge it had to update itself would not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import redis
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from infra.metrics_server import serve_metrics
from infra.names import Names
from infra.streamstats import StreamCollector, age_seconds

log = logging.getLogger(__name__)

EVENTS_APPLIED = Counter("inferflow_projector_events_total", "Stream entries projected.")
APPLY_SECONDS = Histogram(
    "inferflow_projector_apply_duration_seconds",
    "Time to apply one batch (one PostgreSQL transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CHECKPOINT = Gauge(
    "inferflow_projector_checkpoint_timestamp_seconds",
    "When Redis appended the last projected entry (its id's milliseconds), Unix seconds.",
)
END_TO_END_SECONDS = Histogram(
    "inferflow_job_end_to_end_seconds",
    "From a job's submission to its terminal event, observed when that event is projected live.",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


@dataclass
class Position:
    """The checkpoint the projector last reached; None until its first batch."""

    last_entry_id: str | None = None
    entries_read: int = 0


POSITION = Position()


class LagCollector(Collector):
    def __init__(self, client: redis.Redis, names: Names, position: Position) -> None:
        self._redis = client
        self._stream = names.events
        self._position = position

    def collect(self) -> Iterator[Metric]:
        last, read = self._position.last_entry_id, self._position.entries_read
        if last is None:
            return
        try:
            oldest = self._redis.xrange(self._stream, f"({last}", "+", count=1)
            added = self._redis.xinfo_stream(self._stream)["entries-added"] if oldest else read
        except redis.RedisError as exc:
            log.warning("projector lag unavailable", extra={"error": str(exc)})
            return
        yield GaugeMetricFamily(
            "inferflow_projector_lag_entries",
            "Entries in the log not projected yet.",
            value=max(added - read, 0),
        )
        yield GaugeMetricFamily(
            "inferflow_projector_lag_seconds",
            "Age of the oldest entry not projected yet; 0 when caught up.",
            value=age_seconds(str(oldest[0][0])) if oldest else 0.0,
        )


def serve(port: int, client: redis.Redis, names: Names) -> None:
    """Serve /metrics on `port` from a daemon thread; 0 leaves metrics unserved."""
    if port == 0:
        return
    REGISTRY.register(StreamCollector(client, names))
    REGISTRY.register(LagCollector(client, names, POSITION))
    serve_metrics(port)
