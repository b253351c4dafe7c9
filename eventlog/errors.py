"""Errors of the event log's own making, under the one root (domain.errors)."""

from __future__ import annotations

from domain.errors import PermanentError, TransientError


class DeliveryLimitExceededError(PermanentError):
    """An entry delivered so often without finishing that it is taken to kill its consumer."""

    def __init__(self, deliveries: int, limit: int) -> None:
        self.deliveries = deliveries
        self.limit = limit
        super().__init__(
            f"delivered {deliveries} times without finishing (limit {limit}); "
            "moved to the dead-letter stream"
        )


class NotReplicatedError(TransientError):
    """A write reached its master but not the replicas it had to before its answer (WAIT):
    it may yet survive, or be lost if the master fails now."""

    def __init__(self, acknowledged: int, wanted: int, timeout_ms: int) -> None:
        self.acknowledged = acknowledged
        self.wanted = wanted
        super().__init__(
            f"{acknowledged} of {wanted} replicas acknowledged the write within {timeout_ms} ms"
        )
