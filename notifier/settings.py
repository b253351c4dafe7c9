"""Configuration of one notifier process, from the environment."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from domain.webhooks import DEFAULT_JITTER, DEFAULT_SCHEDULE_S
from runtime.settings import CommonSettings, process_name, served_partitions


class NotifierSettings(CommonSettings):
    notifier_name: str = Field(default_factory=process_name, min_length=1)
    # The partitions this notifier reads and delivers for ("0,2" or "0-3"); empty: every one.
    notifier_partitions: str = ""
    # Longest wait for a receiver's answer (connecting, sending, reading): a slower one is a
    # failed attempt.
    webhook_timeout_ms: int = Field(default=15_000, ge=1, le=300_000)
    # Seconds between a failed attempt and the next, comma-separated; the first attempt is
    # immediate, and the message is abandoned once the list is spent. Standard Webhooks'
    # example by default (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h).
    webhook_schedule_s: str = ",".join(f"{s:g}" for s in DEFAULT_SCHEDULE_S)
    # Each delay moves by up to this fraction of itself, either way.
    webhook_jitter: float = Field(default=DEFAULT_JITTER, ge=0.0, lt=1.0)
    # Deliveries in flight at once in this process: a slow receiver holds one each, never the
    # others.
    webhook_concurrency: int = Field(default=128, ge=1, le=10_000)
    # Of those, most to one receiver (host and port): a receiver that is slow, silent or
    # backlogged holds this many slots at most, never all of them.
    webhook_concurrency_per_host: int = Field(default=32, ge=1, le=10_000)
    # Most of a receiver's answer that is read (the rest is dropped with the connection).
    webhook_max_response_bytes: int = Field(default=65_536, ge=0, le=10 * 1024 * 1024)
    # How long a leased message is this notifier's alone; past it, another notifier sends it
    # (this one died). Above WEBHOOK_TIMEOUT_MS, or every slow delivery would be sent twice.
    webhook_lease_ms: int = Field(default=60_000, ge=100)
    # How often to look for due messages when the last look found none.
    webhook_poll_ms: int = Field(default=100, ge=5, le=60_000)
    # How often a batch that asked for a webhook is looked at until it has completed.
    webhook_batch_poll_ms: int = Field(default=1000, ge=10, le=600_000)
    # How long a tenant's secrets are trusted once read: a rotation signs within this time.
    webhook_secret_cache_ms: int = Field(default=5_000, ge=0, le=600_000)
    # The log's reading (eventlog.group), as the consumers'.
    read_block_ms: int = Field(default=1000, ge=1)
    read_count: int = Field(default=256, ge=1, le=10_000)
    lanes_refresh_ms: int = Field(default=1000, ge=10)
    claim_idle_ms: int = Field(default=5000, ge=100)
    claim_interval_ms: int = Field(default=1000, ge=10)
    max_deliveries: int = Field(default=5, ge=1)
    # 0: /metrics not served (several notifiers on one host would need a port each).
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @field_validator("webhook_schedule_s")
    @classmethod
    def _delays(cls, raw: str) -> str:
        delays = [float(part) for part in raw.split(",") if part.strip()]
        if any(delay < 0 for delay in delays):
            raise ValueError("delays are seconds, 0 or more")
        return raw

    @property
    def schedule_s(self) -> tuple[float, ...]:
        return tuple(float(part) for part in self.webhook_schedule_s.split(",") if part.strip())

    @property
    def served(self) -> tuple[int, ...]:
        return served_partitions(self.notifier_partitions, self.partitions)

    @property
    def kept_s(self) -> int:
        """How long a job's webhook hash and a done message are kept: as long as the job's
        index, and at least the whole schedule and a day more."""
        return max(self.job_index_ttl_s, int(sum(self.schedule_s)) + 86400)

    @model_validator(mode="after")
    def _lease_outlasts_a_delivery(self) -> NotifierSettings:
        if self.webhook_lease_ms <= self.webhook_timeout_ms:
            raise ValueError("WEBHOOK_LEASE_MS must be above WEBHOOK_TIMEOUT_MS")
        return self
