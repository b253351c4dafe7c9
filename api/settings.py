"""Configuration of the API process, from the environment."""

from __future__ import annotations

from pydantic import Field

from infra.settings import CommonSettings


class ApiSettings(CommonSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)
    idempotency_ttl_s: int = Field(default=86400, ge=1)
    ready_max_projector_lag_s: float = Field(default=0.0, ge=0.0)
    dependency_timeout_ms: int = Field(default=2000, ge=1)
    # Bodies are refused (413) above this size before anything parses them.
    max_body_bytes: int = Field(default=65536, ge=1024)
    # POST /v1/inference/batch: most items in one batch, and its own (larger) body limit.
    batch_max_items: int = Field(default=1000, ge=1, le=100_000)
    batch_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Longest a long-poll (GET ?wait=, POST Prefer: wait=) is held; requests may ask for up to 60.
    # 0 answers every long-poll at once with the job as it is (e.g. an API without workers).
    max_wait_s: float = Field(default=60.0, ge=0.0, le=60.0)
    # Connections this API process keeps for reading jobs (each long-poll holds none while it
    # waits: it reads before and after).
    db_pool_max_size: int = Field(default=16, ge=1, le=1000)
