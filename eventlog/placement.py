"""Which partition a new job goes to.

Jobs spread evenly and at random over the partitions an API is configured with: no partition
is special, and nothing has to be shared between API processes. A batch goes in runs of at
least `RUN` items per partition, so that a small batch costs one script call, and a large one is
spread over every partition (appended concurrently, consumed and projected in parallel).

Raising `PARTITIONS` on a running deployment: consumers and projectors first (they serve the new,
empty partitions), then the APIs, which start placing new jobs there. Jobs already accepted stay
where their ids say, so nothing moves and nothing is read twice.
"""

from __future__ import annotations

import random

from domain.ids import new_job_id

RUN = 64


class Placement:
    def __init__(self, partitions: int, rng: random.Random | None = None) -> None:
        if partitions < 1:
            raise ValueError("at least one partition")
        self.partitions = partitions
        self._rng = rng or random.Random()

    def partition(self) -> int:
        return self._rng.randrange(self.partitions)

    def elsewhere(self, partition: int) -> list[int]:
        """Every partition but `partition`, in an order of their own (a random rotation)."""
        others = [p for p in range(self.partitions) if p != partition]
        if not others:
            return []
        start = self._rng.randrange(len(others))
        return others[start:] + others[:start]

    def job_id(self) -> str:
        """A new job id, in a partition chosen for it."""
        return new_job_id(self.partition())

    def job_ids(self, count: int) -> list[str]:
        """`count` new job ids for a batch: runs of RUN or more, over as many partitions as the
        batch fills, from a random first one."""
        runs = max(1, min(self.partitions, count // RUN))
        first = self.partition()
        ids = []
        for i in range(count):
            ids.append(new_job_id((first + i * runs // max(count, 1)) % self.partitions))
        return ids
