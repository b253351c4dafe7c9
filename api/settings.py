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
