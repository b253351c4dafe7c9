"""The log's Lua scripts, read from `eventlog/lua/*.lua` once, when this module is imported.

Each script is one atomic Redis command. Clients register them (`client.register_script`) and
redis-py sends EVALSHA, loading a script only when Redis lacks it.
"""

from __future__ import annotations

from importlib.resources import files


def _source(name: str) -> str:
    return files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


SUBMIT = _source("submit")
RESERVE = _source("reserve")
BATCH_SUBMIT = _source("batch_submit")
FINISH = _source("finish")
START = _source("start")
NOTE = _source("note")
CANCEL = _source("cancel")
MARK = _source("mark")
RESET_IDLE = _source("reset_idle")
PROBE = _source("probe")
RATE_LIMIT = _source("rate_limit")
WEBHOOK_TRACK = _source("webhook_track")
WEBHOOK_SCHEDULE = _source("webhook_schedule")
WEBHOOK_LEASE = _source("webhook_lease")
WEBHOOK_OUTCOME = _source("webhook_outcome")
WEBHOOK_REDRIVE = _source("webhook_redrive")
