"""Configuration of the projector process, from the environment."""

from __future__ import annotations

from pydantic import Field

from infra.settings import CommonSettings


class ProjectorSettings(CommonSettings):
    projection_name: str = "jobs"
    read_count: int = Field(default=2000, ge=1, le=10000)
    read_block_ms: int = Field(default=1000, ge=1)
    # After a batch of n entries (n >= 3), wait min(n, linger_ms) ms before reading again; 0: off.
    linger_ms: int = Field(default=0, ge=0, le=1000)
    # Where /metrics is served; 0: not served.
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    # Periodic retention of the stream (python -m projector trim, every N s); 0 turns it off.
    trim_interval_s: float = Field(default=0.0, ge=0.0)
    trim_keep_seconds: float = Field(default=0.0, ge=0.0)
