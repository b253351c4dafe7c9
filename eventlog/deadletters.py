"""The dead-letter stream: requests that were delivered too often, listed and redriven.

A dead letter is the original JobRequested's fields plus why and when it was set aside, and the
lane it was read from. Its job has already failed (exactly one outcome per job), so redriving
submits the same text and model as a new job, in the same partition and lane (the default lane
for letters written before lanes), and removes the letter.

Each partition has its dead-letter stream, and entry ids are unique within a stream only, so a
letter is named `PARTITION/ENTRY_ID` (`2/1764000000000-0`); a bare entry id is partition 0's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from domain.events import JobRequested, decode
from domain.ids import new_job_id
from eventlog.connection import AsyncClient, Client
from eventlog.entries import range_entries
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from eventlog.submission import Retention, submit

_META = ("dead_letter_reason", "original_entry_id", "deliveries", "dead_at", "dead_letter_lane")


def dead_letter_fields(
    entry_id: str,
    fields: dict[str, str],
    deliveries: int,
    reason: str,
    at: datetime,
    lane: str = DEFAULT_LANE.name,
) -> dict[str, str]:
    """The letter of the request `fields`, entry `entry_id` of the lane named `lane`."""
    return {
        **fields,
        "dead_letter_reason": reason,
        "original_entry_id": entry_id,
        "deliveries": str(deliveries),
        "dead_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "dead_letter_lane": lane,
    }


def _lane(name: str | None) -> Lane:
    """The lane a letter names; the default one when it names none (a letter written before
    lanes: the partition's one stream, which is the default lane) or no lane at all."""
    try:
        return Lane.parse(name) if name else DEFAULT_LANE
    except ValueError:
        return DEFAULT_LANE


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    entry_id: str
    job_id: str
    reason: str
    deliveries: int
    dead_at: str
    request: JobRequested | None
    lane: Lane = DEFAULT_LANE
    # The entry as it is in the stream: what puts it back.
    fields: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_entry(cls, partition: int, entry_id: str, fields: dict[str, str]) -> DeadLetter:
        original = {k: v for k, v in fields.items() if k not in _META}
        try:
            request = decode(original)
        except Exception:  # a letter is kept even when its request cannot be read
            request = None
        return cls(
            partition=partition,
            entry_id=entry_id,
            job_id=fields.get("job_id", ""),
            reason=fields.get("dead_letter_reason", ""),
            deliveries=int(fields.get("deliveries", "0")),
            dead_at=fields.get("dead_at", ""),
            request=request if isinstance(request, JobRequested) else None,
            lane=_lane(fields.get("dead_letter_lane")),
            fields=dict(fields),
        )

    @property
    def ref(self) -> str:
        """How an operator names the letter."""
        return f"{self.partition}/{self.entry_id}"


def normal_ref(ref: str) -> str:
    """`ref` as `DeadLetter.ref` writes it: a bare entry id is partition 0's."""
    return ref if "/" in ref else f"0/{ref}"


def list_letters(client: Client, names: Names, partitions: Iterable[int]) -> list[DeadLetter]:
    letters = []
    for partition in partitions:
        entries = range_entries(client.xrange(names.dead_letters(partition)))
        letters += [DeadLetter.from_entry(partition, e, fields) for e, fields in entries]
    return letters


async def list_letters_async(
    client: AsyncClient, names: Names, partitions: Iterable[int]
) -> list[DeadLetter]:
    """`list_letters` for an asyncio client (the API's)."""
    letters = []
    for partition in partitions:
        entries = range_entries(await client.xrange(names.dead_letters(partition)))
        letters += [DeadLetter.from_entry(partition, e, fields) for e, fields in entries]
    return letters


def request_again(letter: DeadLetter) -> JobRequested | None:
    """The letter's request as a new job, in the partition and lane it came from; None when its
    request cannot be read."""
    if letter.request is None:
        return None
    return JobRequested(
        job_id=new_job_id(letter.partition),
        occurred_at=datetime.now(UTC),
        text=letter.request.text,
        model_version=letter.request.model_version,
        traceparent=letter.request.traceparent,  # the redriven job stays in the same trace
        tenant=letter.lane.tenant,
        lane=letter.lane.kind,
    )


def redrive(
    client: Client,
    names: Names,
    partitions: Iterable[int],
    refs: Iterable[str],
    job_index_ttl_s: int,
) -> list[tuple[DeadLetter, str]]:
    """Submit each letter's request as a new job in the lane it came from and delete the
    letter; (letter, new job id)."""
    wanted = {normal_ref(ref) for ref in refs}
    # A redriven job has no Idempotency-Key, so only its job index outlives the call.
    retention = Retention(job_index_ttl_s=job_index_ttl_s, idempotency_ttl_s=1)
    done = []
    for letter in list_letters(client, names, partitions):
        event = request_again(letter) if letter.ref in wanted else None
        if event is None:
            continue
        accepted = submit(client, names, event, retention)
        client.xdel(names.dead_letters(letter.partition), letter.entry_id)
        done.append((letter, accepted.job_id))
    return done
