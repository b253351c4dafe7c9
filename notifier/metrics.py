"""Prometheus metrics of a notifier, served on METRICS_PORT (0, the default: not served, since
several notifiers on one host need a port each)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from runtime.metrics import serve_metrics

ATTEMPTS = Counter(
    "inferflow_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered (a 2xx), retry (due again), abandoned "
    "(410 Gone or the schedule spent), lost (another notifier had taken the message over).",
    ["outcome"],
)
IN_FLIGHT = Gauge("inferflow_webhook_in_flight", "Webhook deliveries this notifier is making.")
DELAY = Histogram(
    "inferflow_webhook_delivery_delay_seconds",
    "From a job's event (its start or its end) to its webhook's delivery.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600),
)


def serve(port: int) -> None:
    serve_metrics(port)
