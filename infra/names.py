"""Every Redis stream, consumer group and key name InferFlow uses, in one place.

A prefix lets several deployments (or test runs) share one Redis server without seeing each
other's data.
"""

from __future__ import annotations

from dataclasses import dataclass

WORKERS_GROUP = "workers"


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str = "inferflow"

    @property
    def events(self) -> str:
        """The event log: every job event, in order. The source of truth."""
        return f"{self.prefix}:events"

    @property
    def workers_group(self) -> str:
        """Consumer group of the inference workers on the event log."""
        return WORKERS_GROUP

    @property
    def dead_letters(self) -> str:
        """Stream of requests that were delivered too often without finishing."""
        return f"{self.prefix}:dead-letters"

    @property
    def terminal(self) -> str:
        """Pub/sub channel: job ids (space-separated) that the projector just made terminal."""
        return f"{self.prefix}:terminal"

    def job(self, job_id: str) -> str:
        """String: stream entry id of the job's JobRequested, for reads before projection."""
        return f"{self.prefix}:job:{job_id}"

    def idempotency(self, key: str) -> str:
        """Hash: job_id and request fingerprint of an Idempotency-Key."""
        return f"{self.prefix}:idempotency:{key}"
