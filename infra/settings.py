"""Settings every role shares. Each role subclasses this and builds one instance at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.names import Names


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/inferflow"
    stream_prefix: str = Field(default="inferflow", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    models_dir: Path = Path("models")
    default_model_version: str = "spam-tfidf-lr-v1"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    job_index_ttl_s: int = Field(default=7 * 86400, ge=60)

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str) -> str:
        """Accept the plain URLs people paste; SQLAlchemy needs the driver named."""
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url

    @property
    def names(self) -> Names:
        return Names(self.stream_prefix)
