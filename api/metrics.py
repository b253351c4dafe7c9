"""Prometheus metrics of the API.

Counters and histograms live in this process (and in PROMETHEUS_MULTIPROC_DIR when several API
workers run). Job counts by status come from the projection at scrape time, so every API
instance reports the same totals.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from domain.job import JobStatus

JOBS_SUBMITTED = Counter(
    "inferflow_jobs_submitted_total", "Jobs accepted (202) by this API.", ["tenant"]
)
IDEMPOTENT_REPLAYS = Counter(
    "inferflow_idempotent_replays_total",
    "Submissions answered from an Idempotency-Key.",
    ["tenant"],
)
RATE_LIMITED = Counter(
    "inferflow_rate_limited_total", "Requests refused (429) by a rate limit.", ["tenant"]
)
OTHER_TENANTS = "other"


class TenantLabels:
    """A tenant's metric label: its name for the first `most` tenants this process counts,
    "other" after them, so that a deployment with many tenants keeps a bounded number of
    series (METRICS_MAX_TENANTS)."""

    def __init__(self, most: int) -> None:
        self._most = most
        self._named: set[str] = set()

    def __call__(self, tenant: str) -> str:
        if tenant in self._named:
            return tenant
        if len(self._named) < self._most:
            self._named.add(tenant)
            return tenant
        return OTHER_TENANTS


REQUESTS = Counter(
    "inferflow_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
PROBLEMS = Counter(
    "inferflow_http_problems_total",
    "Problem details answered (4xx and 5xx), by problem type.",
    ["type"],
)
REQUEST_SECONDS = Histogram(
    "inferflow_http_request_duration_seconds",
    "HTTP request latency: until the answer starts (a stream's life is not counted).",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class _ProjectionCollector(Collector):
    def __init__(self, counts: Mapping[JobStatus, int]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "inferflow_jobs", "Jobs in the projection by status.", labels=["status"]
        )
        for status, n in self._counts.items():
            family.add_metric([status.value], n)
        yield family


def exposition(counts: Mapping[JobStatus, int]) -> tuple[bytes, str]:
    """The scrape body: this process's (or all workers') metrics plus the projection's counts."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    body = generate_latest(registry) + generate_latest(_single(_ProjectionCollector(counts)))
    return body, CONTENT_TYPE_LATEST


def _single(collector: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry
