"""Configuration of the projector process, from the environment."""

from __future__ import annotations

from pydantic import Field

from infra.settings import CommonSettings


class ProjectorSettings(CommonSettings):
    projection_name: str = "jobs"
    read_count: int = Field(default=500, ge=1, le=10000)
    read_block_ms: int = Field(default=1000, ge=1)
