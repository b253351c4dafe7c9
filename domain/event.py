"""The base every event of the log extends (domain.events, domain.webhooks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Fields every event carries."""

    schema_version: ClassVar[int] = 1

    job_id: str
    occurred_at: datetime
