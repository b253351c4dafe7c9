"""Progress of a long replay: events done, events per second, and time left."""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(
        self,
        report: Callable[[str], None],
        interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._report = report
        self._interval_s = interval_s
        self._clock = clock
        self._began = clock()
        self._last = self._began
        self.done = 0

    def rate(self) -> float:
        elapsed = self._clock() - self._began
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, total: int) -> str:
        rate = self.rate()
        left = max(total - self.done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 else "unknown"
        return f"rebuild: {self.done}/{total} events, {rate:.0f} events/s, {eta} left"

    def advance(self, events: int, total: int) -> None:
        """Count `events` more done, and report at most every `interval_s`."""
        self.done += events
        now = self._clock()
        if now - self._last >= self._interval_s:
            self._last = now
            self._report(self.line(total))
