"""Terminal jobs this API process has seen, answered without PostgreSQL.

A terminal job never changes again (domain.job), so its answer, once known, is final: a poll of
a finished job is served from here, and it can never show a state older than one shown before.
Entries come from reads (a terminal state read from the projection) and from the projector's
announcements (api.waiters: rows committed, and final), these kept as they came and rendered on
their first read, so that announcements of jobs nobody polls cost no rendering.

Bounded by count, least recently used first out. Each entry holds the job's tenant: a read
checks it as a read of PostgreSQL would, so another tenant's job stays 404.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from api.conditional import Rendered, render
from readmodel.rows import from_json, to_state

log = logging.getLogger(__name__)

DEFAULT_ENTRIES = 10_000


class TerminalJobs:
    def __init__(self, max_entries: int = DEFAULT_ENTRIES) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be 0 or more")
        self.max_entries = max_entries
        # job id -> its answer, or the announced row (JSON) it is rendered from when first read.
        self._entries: OrderedDict[str, Rendered | str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, job_id: str) -> Rendered | None:
        entry = self._entries.get(job_id)
        if entry is None:
            return None
        if isinstance(entry, str):
            rendered = _rendered_row(job_id, entry)
            if rendered is None:
                del self._entries[job_id]
                return None
            entry = self._entries[job_id] = rendered
        self._entries.move_to_end(job_id)
        return entry

    def remember(self, job_id: str, rendered: Rendered) -> None:
        """Keep a terminal job's answer; any other is refused (it would go stale)."""
        if rendered.terminal:
            self._put(job_id, rendered)

    def announced(self, rows: dict[str, str | None]) -> None:
        """Keep the rows of an announcement (job id -> row JSON, None when it had none)."""
        for job_id, row in rows.items():
            if row is not None and job_id not in self._entries:
                self._put(job_id, row)

    def _put(self, job_id: str, entry: Rendered | str) -> None:
        if self.max_entries == 0:
            return
        self._entries[job_id] = entry
        self._entries.move_to_end(job_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _rendered_row(job_id: str, raw: str) -> Rendered | None:
    try:
        state = to_state(from_json(raw))
    except (ValueError, KeyError, TypeError) as exc:  # not a row of ours: read it instead
        log.warning("unreadable row announced for job %s: %s", job_id, exc)
        return None
    if state.job_id != job_id or not state.status.is_terminal:
        return None
    return render(state)
