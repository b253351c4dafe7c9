"""Helpers shared by the archive and rebuild tests (their fixtures are in conftest.py)."""

from __future__ import annotations

from sqlalchemy import select

from readmodel.tables import events


def archived(engine) -> list[tuple[str, dict]]:
    query = select(events.c.entry_id, events.c.fields).order_by(
        events.c.entry_ms, events.c.entry_seq
    )
    with engine.connect() as conn:
        return [(row.entry_id, dict(row.fields)) for row in conn.execute(query)]
