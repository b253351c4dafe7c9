"""Settings every role shares. Each role subclasses this and builds one instance at start-up."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.ids import MAX_PARTITIONS
from eventlog.connection import ClusterMode
from eventlog.names import Names


def process_name() -> str:
    """A name for a process of a group (a consumer, a notifier): its host's and its pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    # auto: ask the server whether it is a node of a Redis Cluster (eventlog.connection).
    redis_cluster: ClusterMode = "auto"
    # Streams the log is split into. Every role of a deployment names the same number, except
    # while it is raised (eventlog.placement says in which order).
    partitions: int = Field(default=1, ge=1, le=MAX_PARTITIONS)
    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/inferflow"
    stream_prefix: str = Field(default="inferflow", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    models_dir: Path = Path("models")
    default_model_version: str = "spam-tfidf-lr-v1"
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    job_index_ttl_s: int = Field(default=7 * 86400, ge=60)
    # Webhook URLs whose host resolves inside a private network (loopback, RFC 1918, link-local
    # and the like) are refused unless this is true (runtime.webhookurls): at submit and again
    # at delivery.
    webhook_allow_private_networks: bool = False

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


def served_partitions(chosen: str, partitions: int) -> tuple[int, ...]:
    """The partitions a reader serves: `chosen` as "0,2,5-7", or all when it is empty."""
    if not chosen.strip():
        return tuple(range(partitions))
    served: set[int] = set()
    for part in chosen.split(","):
        first, _, last = part.strip().partition("-")
        served.update(range(int(first), int(last or first) + 1))
    if not served or min(served) < 0 or max(served) >= partitions:
        raise ValueError(f"partitions {chosen!r} outside 0..{partitions - 1}")
    return tuple(sorted(served))
