"""Configuration of the API process, from the environment."""

from __future__ import annotations

from pydantic import Field

from eventlog.ratelimit import MAX_PER_S
from runtime.settings import CommonSettings


class ApiSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)
    idempotency_ttl_s: int = Field(default=86400, ge=1)
    ready_max_projector_lag_s: float = Field(default=0.0, ge=0.0)
    dependency_timeout_ms: int = Field(default=2000, ge=1)
    # Replicas that must hold a job's writes before its 202 (Redis WAIT; 0: off), and how long
    # to wait for them (keep it below DEPENDENCY_TIMEOUT_MS). eventlog.replication has the trade.
    submit_replicas: int = Field(default=0, ge=0, le=16)
    submit_replicas_timeout_ms: int = Field(default=1000, ge=1)
    # Bodies are refused (413) above this size before anything parses them.
    max_body_bytes: int = Field(default=65536, ge=1024)
    # POST /v1/inference/batch: most items in one batch, and its own (larger) body limit.
    batch_max_items: int = Field(default=1000, ge=1, le=100_000)
    batch_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # POST /v1/batches (a JSON Lines file, read as it streams in): most lines, and its body
    # limit, which the file is checked against as it arrives.
    batch_file_max_lines: int = Field(default=100_000, ge=1, le=1_000_000)
    batch_file_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    # Longest a long-poll (GET ?wait=, POST Prefer: wait=) is held; requests may ask for up to 60.
    # 0 answers every long-poll at once with the job as it is (e.g. an API without workers).
    max_wait_s: float = Field(default=60.0, ge=0.0, le=60.0)
    # Retry-After on an unfinished job's GET /v1/jobs/{id} (not a long-poll's): when a poller
    # should ask again, in whole seconds (0: not said).
    poll_retry_after_s: int = Field(default=1, ge=0, le=3600)
    # Finished jobs each API process keeps to answer reads without PostgreSQL (about 1 KB each),
    # least recently read first out; 0: none kept.
    terminal_cache_entries: int = Field(default=10_000, ge=0, le=1_000_000)
    # How long an unfinished job's answer is reused for the reads that follow (api.unfinished):
    # a started job may read as queued for this long; its end is never held back. 0: never.
    poll_cache_ms: int = Field(default=100, ge=0, le=10_000)
    # Connections this API process keeps for reading jobs (each long-poll holds none while it
    # waits: it reads before and after).
    db_pool_max_size: int = Field(default=16, ge=1, le=1000)
    # API keys (api/keys.py). Off only on a trusted single-tenant network: every request then
    # acts as an admin of the default tenant, and the API warns at start.
    auth_enabled: bool = True
    # How long a process trusts what it read of a key or a tenant's limits: a revoked key
    # stops working, and changed limits apply, on every API process within this time.
    auth_cache_ms: int = Field(default=2000, ge=0, le=60_000)
    # Limits of a tenant without limits of its own (0: none). A burst of 0 is one second's worth.
    tenant_requests_per_s: float = Field(default=0.0, ge=0.0, le=MAX_PER_S)
    tenant_requests_burst: int = Field(default=0, ge=0)
    tenant_jobs_per_s: float = Field(default=0.0, ge=0.0, le=MAX_PER_S)
    tenant_jobs_burst: int = Field(default=0, ge=0)
    # Most jobs a tenant may have accepted and not finished (0: no cap).
    tenant_max_queued: int = Field(default=0, ge=0)
    # How long a rotated webhook secret still signs deliveries beside the new one.
    webhook_secret_overlap_s: int = Field(default=86400, ge=0, le=30 * 86400)
    # Tenants named in metric labels; the others are counted under "other".
    metrics_max_tenants: int = Field(default=20, ge=0, le=1000)
