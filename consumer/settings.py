"""Configuration of one consumer process, from the environment."""

from __future__ import annotations

from pydantic import Field

from runtime.settings import CommonSettings, process_name, served_partitions


class ConsumerSettings(CommonSettings):
    consumer_name: str = Field(default_factory=process_name, min_length=1)
    # The partitions this consumer works on ("0,2" or "0-3"); empty: every one. It reads each
    # in a thread of its own.
    consumer_partitions: str = ""
    # Entries per read (requests, and the outcome events the group sees too): one batch.
    batch_max_size: int = Field(default=256, ge=1, le=10000)
    # 0: work on what one read returns. Above 0: once a read returned something, go on reading
    # this long while the batch has room (bigger batches, at the cost of that much latency).
    batch_max_wait_ms: int = Field(default=0, ge=0, le=10000)
    read_block_ms: int = Field(default=1000, ge=1)
    # How often to look for lanes (eventlog.lanes) that appeared since the last look; a read
    # that finds nothing looks at once as well.
    lanes_refresh_ms: int = Field(default=1000, ge=10)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_initial_ms: int = Field(default=100, ge=0)
    retry_max_ms: int = Field(default=2000, ge=0)
    retry_jitter_ms: int = Field(default=100, ge=0)
    inference_timeout_ms: int = Field(default=5000, ge=1)
    claim_idle_ms: int = Field(default=5000, ge=100)
    claim_interval_ms: int = Field(default=1000, ge=10)
    max_deliveries: int = Field(default=5, ge=1)
    # Replicas that must hold each event and outcome this consumer writes before it counts as
    # written (Redis WAIT; 0: off): so that a failover cannot take back an outcome the
    # projector has already applied (docs/reliability.md).
    outcome_replicas: int = Field(default=0, ge=0, le=16)
    outcome_replicas_timeout_ms: int = Field(default=1000, ge=1)
    # How often to cancel the jobs whose deadline (Cancel-After) has passed, in every partition
    # served (consumer.deadlines): how late past its deadline a job may still end.
    deadline_sweep_ms: int = Field(default=250, ge=10, le=60_000)
    # Due jobs cancelled per partition and round trip.
    deadline_sweep_count: int = Field(default=500, ge=1, le=10_000)
    fault_injection: bool = False
    # 0: /metrics not served (several consumers on one host would need a port each).
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @property
    def served(self) -> tuple[int, ...]:
        return served_partitions(self.consumer_partitions, self.partitions)
