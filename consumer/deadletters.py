"""The dead-letter stream: requests that were delivered too often, listed and redriven.

A dead letter is the original JobRequested's fields plus why and when it was set aside. Its job
has already failed (exactly one outcome per job), so redriving submits the same text and model
as a new job and removes the letter.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from domain.events import JobRequested, decode
from domain.ids import new_job_id
from infra.eventlog import SUBMIT_SCRIPT, parse_submission, range_entries, submit_args
from infra.names import Names

_META = ("dead_letter_reason", "original_entry_id", "deliveries", "dead_at")


def dead_letter_fields(
    entry_id: str, fields: dict[str, str], deliveries: int, reason: str, at: datetime
) -> dict[str, str]:
    return {
        **fields,
        "dead_letter_reason": reason,
        "original_entry_id": entry_id,
        "deliveries": str(deliveries),
        "dead_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }


@dataclass(frozen=True, slots=True)
class DeadLetter:
    entry_id: str
    job_id: str
    reason: str
    deliveries: int
    dead_at: str
    request: JobRequested | None

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> DeadLetter:
        original = {k: v for k, v in fields.items() if k not in _META}
        try:
            request = decode(original)
        except Exception:  # a letter is kept even when its request cannot be read
            request = None
        return cls(
            entry_id=entry_id,
            job_id=fields.get("job_id", ""),
            reason=fields.get("dead_letter_reason", ""),
            deliveries=int(fields.get("deliveries", "0")),
            dead_at=fields.get("dead_at", ""),
            request=request if isinstance(request, JobRequested) else None,
        )


def list_letters(client: redis.Redis, names: Names) -> list[DeadLetter]:
    entries = range_entries(client.xrange(names.dead_letters))
    return [DeadLetter.from_entry(entry_id, fields) for entry_id, fields in entries]


def redrive(
    client: redis.Redis, names: Names, entry_ids: Iterable[str], job_index_ttl_s: int
) -> list[tuple[DeadLetter, str]]:
    """Submit each letter's request as a new job and delete the letter; (letter, new job id)."""
    wanted = set(entry_ids)
    submit = client.register_script(SUBMIT_SCRIPT)
    done = []
    for letter in list_letters(client, names):
        if letter.entry_id not in wanted or letter.request is None:
            continue
        event = JobRequested(
            job_id=new_job_id(),
            occurred_at=datetime.now(UTC),
            text=letter.request.text,
            model_version=letter.request.model_version,
            traceparent=letter.request.traceparent,  # the redriven job stays in the same trace
        )
        keys, argv = submit_args(names, event, None, "", job_index_ttl_s, 1)
        accepted = parse_submission(submit(keys=keys, args=argv))
        client.xdel(names.dead_letters, letter.entry_id)
        done.append((letter, accepted.job_id))
    return done
