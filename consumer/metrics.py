"""Prometheus metrics of a consumer, served on METRICS_PORT (0, the default: not served, since
several consumers on one host need a port each; `make run` gives each its own)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from runtime.metrics import serve_metrics

JOBS = Counter(
    "inferflow_consumer_jobs_total",
    "Jobs finished by this consumer; superseded: another consumer had claimed the entry; "
    "cancelled: the job was cancelled before its outcome (it never ran, or its outcome was "
    "dropped).",
    ["outcome"],
)
CANCELS = Counter(
    "inferflow_consumer_cancels_total",
    "JobCancelled events this consumer wrote: its deadline passed before it started (expired) "
    "or while it ran (timed_out), or its batch was cancelled before it ended (batch_cancelled).",
    ["reason"],
)
INFERENCE_SECONDS = Histogram(
    "inferflow_inference_duration_seconds",
    "Time each job's prediction attempt took, failed ones included; a job predicted in a batch "
    "counts the whole batch's time, which is what it waited.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "inferflow_consumer_batch_size",
    "Entries handled per poll that found any (claimed plus new).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
)
INFERENCE_BATCH_SIZE = Histogram(
    "inferflow_inference_batch_size",
    "Texts per vectorized prediction (one per model version in a batch).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
RETRIES = Counter(
    "inferflow_consumer_retries_total", "Attempts retried, by error type.", ["error_type"]
)
TIMEOUTS = Counter("inferflow_inference_timeouts_total", "Predictions that overran the limit.")
DEAD_LETTERS = Counter(
    "inferflow_consumer_dead_letters_total", "Requests sent to the dead-letter stream."
)
RECLAIMED = Counter(
    "inferflow_consumer_reclaimed_total", "Entries claimed from consumers that went silent."
)


def serve(port: int) -> None:
    serve_metrics(port)
