"""The event log's shape, sampled from Redis when Prometheus scrapes: length, group lag and
pending entries, the age of the oldest pending entry, the dead-letter stream's length.

Sampled rather than counted, so every process that serves it reports the same truth, and a
stalled consumer still shows up (nothing it would have to do itself).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from infra.names import Names

log = logging.getLogger(__name__)


def entry_ms(entry_id: str) -> int:
    """The Unix milliseconds at which Redis added the entry (the first part of its id)."""
    return int(entry_id.split("-")[0])


def age_seconds(entry_id: str) -> float:
    return max(time.time() * 1000 - entry_ms(entry_id), 0.0) / 1000


def _gauge(name: str, doc: str, value: float | None, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    if value is not None:
        family.add_metric(list(labels.values()), value)
    return family


class StreamCollector(Collector):
    def __init__(self, client: redis.Redis, names: Names) -> None:
        self._redis = client
        self._names = names

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._sample()
        except redis.RedisError as exc:
            # A scrape must still answer (with the process's own metrics) while Redis is down.
            log.warning("stream metrics unavailable", extra={"error": str(exc)})

    def _sample(self) -> Iterator[Metric]:
        names = self._names
        yield _gauge(
            "inferflow_stream_length", "Entries in the event log.", self._redis.xlen(names.events)
        )
        yield _gauge(
            "inferflow_dead_letters",
            "Entries in the dead-letter stream.",
            self._redis.xlen(names.dead_letters),
        )
        group = self._group()
        if group is None:
            return
        group_name = names.workers_group
        yield _gauge(
            "inferflow_group_lag",
            "Entries the consumer group has not been delivered yet.",
            group.get("lag"),  # None when Redis cannot tell (after deletions): no sample
            group=group_name,
        )
        yield _gauge(
            "inferflow_group_pending",
            "Entries delivered to a consumer and not acknowledged yet.",
            group["pending"],
            group=group_name,
        )
        oldest = self._oldest_pending()
        yield _gauge(
            "inferflow_group_oldest_pending_age_seconds",
            "Age (since it was appended) of the oldest unacknowledged entry; 0 when none.",
            age_seconds(oldest) if oldest else 0.0,
            group=group_name,
        )

    def _group(self) -> dict[str, Any] | None:
        try:
            groups = self._redis.xinfo_groups(self._names.events)
        except redis.ResponseError:  # no stream yet
            return None
        return next((g for g in groups if g["name"] == self._names.workers_group), None)

    def _oldest_pending(self) -> str | None:
        summary = self._redis.xpending(self._names.events, self._names.workers_group)
        return summary.get("min") if summary.get("pending") else None
