"""Process-wide logging set-up, shared by the roles: one line per record, JSON or text.

Structured fields travel in the record through `extra=` (job_id, event, consumer, attempt,
duration_ms, trace_id, ...); both formats print every such field, so a log call never has to
repeat them in its message.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

FORMATS = ("json", "text")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
# uvicorn adds `color_message`, a copy of the message with terminal escapes.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def structured_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self._role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "role": self._role,
            "logger": record.name,
            "message": record.getMessage(),
            **structured_fields(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        # default=str: a stray datetime or exception in `extra` must not lose the line.
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For people watching `make run`: the usual line, then the structured fields as k=v."""

    def __init__(self, role: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {role} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in structured_fields(record).items())
        if not extra:
            return line
        head, _, tail = line.partition("\n")  # keep a traceback below the fields
        return f"{head} {extra}" + (f"\n{tail}" if tail else "")


def configure(level: str, role: str, fmt: str | None = None) -> None:
    """Log to stderr at `level` in `fmt` (default: LOG_FORMAT from the environment, else json)."""
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "json").lower()
    handler = logging.StreamHandler()
    handler.setFormatter(TextFormatter(role) if fmt == "text" else JsonFormatter(role))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
