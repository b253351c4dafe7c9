"""Answers of unfinished jobs, reused by the reads of the next few milliseconds.

A poller asks about a job every few milliseconds, and the job changes state a handful of times
in its life: most polls would read PostgreSQL to learn nothing new, and that read is most of a
poll's cost. An answer is reused for `fresh_ms` (POLL_CACHE_MS) at most, so a job that has
started can read as queued for that long, never longer. A job's end is not held back: the
projector's announcement drops the job's entry (api.waiters) and gives its terminal answer to
api.terminal, which reads consult first.

An entry is replaced only by a state at least as new as its own, so that a read that began
before another and ended after it cannot put an older state back: reads in one process never
go back in a job's history.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from cachetools import TTLCache

from api.conditional import Rendered
from domain.job import JobState

DEFAULT_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    # The state's place in its job's history: every event moves one of these forward.
    order: tuple[datetime, int, int]
    rendered: Rendered


def order_of(state: JobState) -> tuple[datetime, int, int]:
    return (state.updated_at, state.attempts, state.retry_count)


class UnfinishedJobs:
    def __init__(
        self,
        fresh_ms: int,
        max_entries: int = DEFAULT_ENTRIES,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: TTLCache[str, _Entry] | None = (
            TTLCache(max_entries, fresh_ms / 1000, timer=timer)
            if fresh_ms > 0 and max_entries > 0
            else None
        )

    def __len__(self) -> int:
        return 0 if self._entries is None else len(self._entries)

    def get(self, job_id: str) -> Rendered | None:
        if self._entries is None:
            return None
        entry = self._entries.get(job_id)
        return None if entry is None else entry.rendered

    def remember(self, state: JobState, rendered: Rendered) -> None:
        """Keep an unfinished job's answer, unless a newer one is kept already."""
        if self._entries is None or rendered.terminal:
            return
        order = order_of(state)
        kept = self._entries.get(state.job_id)
        if kept is not None and kept.order > order:
            return
        self._entries[state.job_id] = _Entry(order, rendered)

    def forget(self, job_ids: Iterable[str]) -> None:
        if self._entries is None:
            return
        for job_id in job_ids:
            self._entries.pop(job_id, None)

    def clear(self) -> None:
        if self._entries is not None:
            self._entries.clear()
