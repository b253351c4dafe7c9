"""The projector's announcement of terminal jobs: what it holds and how listeners read it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from domain.events import JobRequested
from domain.ids import new_job_id
from domain.job import JobStatus, evolve
from readmodel import announcement, rows


def row(status: JobStatus) -> dict:
    requested = JobRequested(
        job_id=new_job_id(), occurred_at=datetime.now(UTC), text="t", model_version="m"
    )
    return rows.to_row(replace(evolve(None, requested), status=status), "1-0")


def test_a_small_batch_announces_each_terminal_job_with_its_row():
    done, failed = row(JobStatus.SUCCEEDED), row(JobStatus.FAILED)
    changed = [row(JobStatus.QUEUED), done, row(JobStatus.STARTED), failed]
    message = announcement.encode(announcement.terminal_rows(changed))
    found = announcement.decode(message)
    assert list(found) == [done["job_id"], failed["job_id"]]
    assert rows.from_json(found[done["job_id"]]) == done
    assert rows.from_json(found[failed["job_id"]]) == failed
    # Split on whitespace, the message still gives the ids, as it always did.
    assert [word for word in message.split() if word in found] == list(found)


def test_a_large_batch_announces_ids_only():
    many = [row(JobStatus.SUCCEEDED) for _ in range(announcement.ROWS_UP_TO + 1)]
    message = announcement.encode(many)
    assert message.split() == [r["job_id"] for r in many]
    assert announcement.decode(message) == {r["job_id"]: None for r in many}


def test_ids_separated_by_spaces_name_jobs_without_rows():
    a, b = new_job_id(), new_job_id()
    assert announcement.decode(f"{a} {b}") == {a: None, b: None}
