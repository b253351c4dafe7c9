"""What load clients saw, counted in each load process and merged in the parent."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Tally:
    """Counts and latencies of one load run (or of one load process's share of it).

    Times are `time.time()` seconds so that load processes and Redis entry ids (wall-clock
    milliseconds) can be compared; durations are measured with perf_counter.
    """

    began_at: float = 0.0
    ended_at: float = 0.0
    requests: int = 0
    cpu_s: float = 0.0  # CPU the load process spent, to tell a slow client from a slow server
    accepted: list[str] = field(default_factory=list)  # job ids of 2xx submissions
    accepted_count: int = 0  # also counts submissions whose answer holds no job id (reference)
    replayed: int = 0
    rejected: int = 0  # batch items the API refused (the batch itself was answered)
    refused: Counter[int] = field(default_factory=Counter)  # non-2xx answers by status
    timeouts: int = 0
    errors: Counter[str] = field(default_factory=Counter)  # no usable answer, by cause
    submit_s: list[float] = field(default_factory=list)  # one per submitting request
    terminal_s: list[float] = field(default_factory=list)  # submit start -> terminal answer
    terminal_at: list[float] = field(default_factory=list)  # time.time() of each one's start
    terminal_ids: list[str] = field(default_factory=list)  # and its job's id
    statuses: Counter[str] = field(default_factory=Counter)  # final status each client saw
    unfinished: int = 0  # accepted, but the client stopped waiting before it was terminal
    waits_expired: int = 0  # POSTs with Prefer: wait answered before the job was terminal

    @property
    def wall_s(self) -> float:
        return max(self.ended_at - self.began_at, 1e-9)

    @property
    def refused_count(self) -> int:
        return sum(self.refused.values())

    @property
    def failures(self) -> int:
        """Requests that got no usable answer (timed out, failed, read refused)."""
        return self.timeouts + sum(self.errors.values())

    def add(self, other: Tally) -> None:
        self.began_at = min(self.began_at or other.began_at, other.began_at)
        self.ended_at = max(self.ended_at, other.ended_at)
        self.requests += other.requests
        self.cpu_s += other.cpu_s
        self.accepted += other.accepted
        self.accepted_count += other.accepted_count
        self.replayed += other.replayed
        self.rejected += other.rejected
        self.refused += other.refused
        self.timeouts += other.timeouts
        self.errors += other.errors
        self.submit_s += other.submit_s
        self.terminal_s += other.terminal_s
        self.terminal_at += other.terminal_at
        self.terminal_ids += other.terminal_ids
        self.statuses += other.statuses
        self.unfinished += other.unfinished
        self.waits_expired += other.waits_expired

    def terminal_between(self, start: float, end: float) -> list[float]:
        """Submit-to-terminal times of the jobs whose submission started within [start, end]
        (time.time() seconds)."""
        return [latency for _, latency, _ in self.jobs_between(start, end)]

    def jobs_between(
        self, start: float = -math.inf, end: float = math.inf
    ) -> list[tuple[str, float, float]]:
        """(job id, submit-to-terminal time, submission's start) of the jobs whose submission
        started within [start, end] (all of them by default)."""
        jobs = zip(self.terminal_ids, self.terminal_s, self.terminal_at, strict=True)
        return [(job, latency, at) for job, latency, at in jobs if start <= at <= end]


def merged(tallies: list[Tally]) -> Tally:
    total = Tally()
    for tally in tallies:
        total.add(tally)
    return total
