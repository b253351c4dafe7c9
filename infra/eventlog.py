"""The event log on a Redis Stream: appending, reading and the atomic scripts.

Two steps must be atomic, so they are Lua scripts that Redis runs as one command:
- accepting a job: the Idempotency-Key check, the `JobRequested` append and the job index;
- finishing a job: only the consumer that still owns the stream entry may append the terminal
  event, and the append and the XACK land together (exactly one terminal event per job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.events import Event, JobRequested, encode
from infra.names import Names

# KEYS: stream, job index key, idempotency key ("" when none)
# ARGV: job id, job index ttl s, idempotency ttl s, fingerprint, then the event's field/value pairs
# Returns {1, job_id, entry_id} when accepted, {0, job_id, fingerprint} for a known key.
SUBMIT_SCRIPT = """
if KEYS[3] ~= '' then
  local known = redis.call('HMGET', KEYS[3], 'job_id', 'fingerprint')
  if known[1] then return {0, known[1], known[2]} end
end
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5))
redis.call('SET', KEYS[2], entry, 'EX', ARGV[2])
if KEYS[3] ~= '' then
  redis.call('HSET', KEYS[3], 'job_id', ARGV[1], 'fingerprint', ARGV[4])
  redis.call('EXPIRE', KEYS[3], ARGV[3])
end
return {1, ARGV[1], entry}
"""

# KEYS: stream, and the dead-letter stream when the entry goes there too.
# ARGV: group, consumer, entry id, N, the terminal event's N field/value strings, then the
# dead-letter entry's field/value strings (when KEYS[2] is given).
# Returns the new entry id, or false when the entry is no longer this consumer's.
FINISH_SCRIPT = """
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #owned == 0 then return false end
local last = 4 + tonumber(ARGV[4])
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 5, last))
if KEYS[2] then redis.call('XADD', KEYS[2], '*', unpack(ARGV, last + 1)) end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
return entry
"""

# KEYS: stream. ARGV: group, consumer, idle ms, then entry ids.
# Sets the idle time of each entry this consumer still owns: 0 keeps a long job from being
# claimed (heartbeat); the claim threshold hands an entry back for others to claim at once.
# XCLAIM with JUSTID does not count as a delivery.
RESET_IDLE_SCRIPT = """
local reset = 0
for i = 4, #ARGV do
  local owned = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if #owned == 1 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3], 'JUSTID')
    reset = reset + 1
  end
end
return reset
"""


Entry = tuple[str, dict[str, str]]


def stream_entries(reply: Any) -> list[Entry]:
    """The entries of an XREAD/XREADGROUP reply (decoded responses), in order."""
    return [entry for _stream, entries in reply or [] for entry in entries]


def range_entries(reply: Any) -> list[Entry]:
    """The entries of an XRANGE reply (decoded responses)."""
    return list(reply or [])


def stream_fields(event: Event) -> dict[Any, Any]:
    """The event's fields typed as redis-py's XADD wants them."""
    return dict(encode(event))


@dataclass(frozen=True, slots=True)
class Submission:
    """What accepting a request did: a new job, or the job an Idempotency-Key already named."""

    job_id: str
    created: bool
    fingerprint: str | None = None


def flat_args(fields: Mapping[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]


def submit_args(
    names: Names,
    event: JobRequested,
    idempotency_key: str | None,
    fingerprint: str,
    job_index_ttl_s: int,
    idempotency_ttl_s: int,
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for SUBMIT_SCRIPT."""
    keys = [
        names.events,
        names.job(event.job_id),
        names.idempotency(idempotency_key) if idempotency_key else "",
    ]
    argv = [event.job_id, str(job_index_ttl_s), str(idempotency_ttl_s), fingerprint]
    return keys, argv + flat_args(encode(event))


def parse_submission(reply: Sequence[bytes | str | int]) -> Submission:
    created, job_id, third = reply
    text = [x.decode() if isinstance(x, bytes) else x for x in (job_id, third)]
    if int(created) == 1:
        return Submission(job_id=str(text[0]), created=True)
    return Submission(job_id=str(text[0]), created=False, fingerprint=str(text[1]))


def finish_args(
    names: Names,
    consumer: str,
    entry_id: str,
    event: Event,
    dead_letter: Mapping[str, str] | None = None,
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for FINISH_SCRIPT."""
    outcome = flat_args(encode(event))
    argv = [names.workers_group, consumer, entry_id, str(len(outcome)), *outcome]
    if dead_letter is None:
        return [names.events], argv
    return [names.events, names.dead_letters], argv + flat_args(dead_letter)
