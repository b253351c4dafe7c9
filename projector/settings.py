"""Configuration of the projector process, from the environment."""

from __future__ import annotations

from pydantic import Field

from runtime.settings import CommonSettings, served_partitions

BULK_READ_COUNT = 256


class ProjectorSettings(CommonSettings):
    projection_name: str = "jobs"
    # The partitions this process projects ("0,2" or "0-3"); empty: every one. Several
    # processes may serve one partition: one projects it, the others stand by (projector.leases).
    projector_partitions: str = ""
    # How often a standby tries for a partition's lease, and a holder checks it still has it.
    lease_retry_ms: int = Field(default=2000, ge=10)
    # Most partitions this process projects at once (0: no limit): N replicas serving every
    # partition with ceil(PARTITIONS / N) each share them out, and take a dead one's over.
    projector_max_partitions: int = Field(default=0, ge=0)
    # Most entries per lane of one read of the interactive lanes (and of a blocking read).
    read_count: int = Field(default=2000, ge=1, le=10000)
    # Most entries of one round of the bulk lanes, shared equally among them: the longest batch
    # an interactive entry can find the projector busy with (projector.runner).
    bulk_read_count: int = Field(default=BULK_READ_COUNT, ge=1, le=10000)
    read_block_ms: int = Field(default=1000, ge=1)
    # How often to look for lanes registered since (new tenants, or a tenant's first batch),
    # besides whenever every lane came back empty.
    lanes_refresh_ms: int = Field(default=1000, ge=1)
    # After a batch of n entries (n >= 3), wait min(n, linger_ms) ms before reading again; 0: off.
    linger_ms: int = Field(default=0, ge=0, le=1000)
    # Where /metrics is served; 0: not served.
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    # Periodic retention of the stream (python -m projector trim, every N s); 0 turns it off.
    trim_interval_s: float = Field(default=0.0, ge=0.0)
    trim_keep_seconds: float = Field(default=0.0, ge=0.0)

    @property
    def served(self) -> tuple[int, ...]:
        return served_partitions(self.projector_partitions, self.partitions)
