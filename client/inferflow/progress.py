"""A one-line progress bar on a terminal: done and failed of a total, the rate and time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def line(stage: str, done: int, failed: int, total: int, rate: float) -> str:
    """The bar's text: `done` counts every ended job, `failed` those of them that did not
    succeed; `rate` is ended jobs per second."""
    share = done / total if total else 1.0
    filled = int(share * WIDTH)
    bar = "#" * filled + "." * (WIDTH - filled)
    left = (total - done) / rate if rate > 0 else None
    return (
        f"{stage:<10} [{bar}] {done:,}/{total:,} {share:6.1%}  failed {failed:,}  "
        f"{rate:,.0f}/s  left {eta(left if done < total else 0)}"
    )


class Progress:
    """Redraws its line in place at most `hz` times a second, when `stream` is a terminal
    (or `enabled` says so); otherwise says nothing."""

    def __init__(
        self, total: int, stream: TextIO = sys.stderr, enabled: bool | None = None, hz: float = 8
    ) -> None:
        self.total = total
        self._stream = stream
        self._on = stream.isatty() if enabled is None else enabled
        self._every = 1 / hz
        self._drawn = 0.0
        self._start = time.monotonic()
        self._base = 0

    def restart(self, done: int) -> None:
        """Measure the rate from now, `done` being ended already (a resumed run's)."""
        self._start, self._base = time.monotonic(), done

    def show(self, stage: str, done: int, failed: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self._on or (not force and now - self._drawn < self._every):
            return
        self._drawn = now
        elapsed = now - self._start
        rate = (done - self._base) / elapsed if elapsed > 0 else 0.0
        self._stream.write("\r" + line(stage, done, failed, self.total, rate) + "\x1b[K")
        self._stream.flush()

    def finish(self) -> None:
        if self._on:
            self._stream.write("\n")
            self._stream.flush()
