"""The log formats: one JSON object per line carrying `extra=` fields, or text with k=v."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from runtime import logs


@pytest.fixture(autouse=True)
def _restore_root_logger():
    """configure() replaces the root logger's handlers (pytest's too): put them back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _emit(fmt: str, monkeypatch: pytest.MonkeyPatch, **extra: object) -> str:
    monkeypatch.setenv("LOG_FORMAT", fmt)
    logs.configure("INFO", "consumer")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("inferflow.test").info("job finished", extra=extra)
    return stream.getvalue()


def test_json_lines_carry_the_structured_fields(monkeypatch: pytest.MonkeyPatch):
    out = _emit("json", monkeypatch, job_id="j-1", event="JobSucceeded", attempt=2, duration_ms=1.5)
    [line] = out.splitlines()
    record = json.loads(line)
    assert record["message"] == "job finished"
    assert record["level"] == "INFO" and record["role"] == "consumer"
    assert record["ts"].endswith("Z")
    assert record["job_id"] == "j-1" and record["event"] == "JobSucceeded"
    assert record["attempt"] == 2 and record["duration_ms"] == 1.5


def test_json_is_the_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    logs.configure("INFO", "api")
    assert isinstance(logging.getLogger().handlers[0].formatter, logs.JsonFormatter)


def test_json_survives_values_json_cannot_hold(monkeypatch: pytest.MonkeyPatch):
    record = json.loads(_emit("json", monkeypatch, error=ValueError("bad"), raw=b"\xff"))
    assert record["error"] == "bad"


def test_exceptions_stay_inside_the_one_line():
    formatter = logs.JsonFormatter("projector")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed", None, exc_info=sys.exc_info()
        )
    line = formatter.format(record)
    assert "\n" not in line
    assert "RuntimeError: boom" in json.loads(line)["exc"]


def test_text_mode_appends_fields_for_people(monkeypatch: pytest.MonkeyPatch):
    out = _emit("text", monkeypatch, job_id="j-1", consumer="consumer-1")
    assert "INFO consumer inferflow.test: job finished job_id=j-1 consumer=consumer-1" in out
