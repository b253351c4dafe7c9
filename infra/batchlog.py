"""Accepting a batch of jobs onto the event log in one Redis command.

BATCH_SUBMIT_SCRIPT does, for every item of a batch and in the batch's order, what SUBMIT_SCRIPT
(infra/eventlog.py) does for one job: the Idempotency-Key check, the `JobRequested` append, the
job index and the key's hash. Each item is atomic on its own and so is the whole batch (Redis runs
a script as one command). Items are checked against the keys the earlier items of the same batch
have just written, so a key repeated in a batch names the job of its first item.

Every event of a batch is a `JobRequested`, so the field names are sent once and only each
item's values after them: about half the arguments that flat pairs would take. redis-py's
asyncio client packs a command in Python at most of a microsecond per argument, which makes
packing one of the largest per-item costs of a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.events import JobRequested, encode
from infra.eventlog import Submission, parse_submission
from infra.names import Names

# KEYS: stream, then for each item its job index key and its idempotency key ("" when none).
# ARGV: job index ttl s, idempotency ttl s, N, the N field names of every event, then for each
# item its fingerprint and its N field values (the job id is the value of the field `job_id`).
# Returns, for each item in order, {1, job_id, entry_id} when accepted, or
# {0, job_id, fingerprint} when its key already named a job.
BATCH_SUBMIT_SCRIPT = """
local n = tonumber(ARGV[3])
local fields, id_at = {}, 0
for f = 1, n do
  fields[2 * f - 1] = ARGV[3 + f]
  if ARGV[3 + f] == 'job_id' then id_at = 2 * f end
end
if id_at == 0 then return redis.error_reply('no job_id field') end
local replies, at = {}, 4 + n
for i = 1, (#KEYS - 1) / 2 do
  local index_key, key, fingerprint = KEYS[2 * i], KEYS[2 * i + 1], ARGV[at]
  for f = 1, n do fields[2 * f] = ARGV[at + f] end
  at = at + n + 1
  local known = false
  if key ~= '' then known = redis.call('HMGET', key, 'job_id', 'fingerprint') end
  if known and known[1] then
    replies[i] = {0, known[1], known[2]}
  else
    local job_id = fields[id_at]
    local entry = redis.call('XADD', KEYS[1], '*', unpack(fields))
    redis.call('SET', index_key, entry, 'EX', ARGV[1])
    if key ~= '' then
      redis.call('HSET', key, 'job_id', job_id, 'fingerprint', fingerprint)
      redis.call('EXPIRE', key, ARGV[2])
    end
    replies[i] = {1, job_id, entry}
  end
end
return replies
"""


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One item of a batch to accept: its event, and its Idempotency-Key if it has one.

    The fingerprint is stored with the key only, so it may be "" for an entry without one.
    """

    event: JobRequested
    idempotency_key: str | None
    fingerprint: str


def batch_submit_args(
    names: Names,
    entries: Sequence[BatchEntry],
    job_index_ttl_s: int,
    idempotency_ttl_s: int,
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for BATCH_SUBMIT_SCRIPT; `entries` must not be empty."""
    keys = [names.events]
    values: list[str] = []
    field_names: tuple[str, ...] = ()
    for entry in entries:
        fields = encode(entry.event)
        if not field_names:
            field_names = tuple(fields)
        elif tuple(fields) != field_names:  # values are sent by position: names must line up
            raise ValueError(f"event fields {tuple(fields)} differ from {field_names}")
        key = entry.idempotency_key
        keys += (names.job(entry.event.job_id), names.idempotency(key) if key else "")
        values.append(entry.fingerprint)
        values += fields.values()
    if not field_names:
        raise ValueError("a batch needs at least one entry")
    header = [str(job_index_ttl_s), str(idempotency_ttl_s), str(len(field_names))]
    return keys, [*header, *field_names, *values]


def parse_batch(reply: Sequence[Any]) -> list[Submission]:
    """What the script did with each item, in the batch's order."""
    return [parse_submission(item) for item in reply]
