"""Optional OpenTelemetry spans: off by default, a no-op while off, harmless without the SDK."""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import spans

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def _spans_off() -> Iterator[None]:
    spans.reset()
    yield
    spans.reset()


def test_spans_are_off_unless_an_exporter_is_named():
    for environ in ({}, {"OTEL_TRACES_EXPORTER": ""}, {"OTEL_TRACES_EXPORTER": "none"}):
        assert spans.configure_tracing("test", environ) is False
    assert not spans.enabled()


def test_a_span_while_off_is_a_shared_no_op():
    first = spans.span("x", PARENT, a=1)
    assert first is spans.span("y")  # nothing is built per call
    with first as current:
        current.set(b=2)
        current.fail("ignored")
        assert current.traceparent == ""
    spans.record("x", PARENT, 0, 1, a=1)


def test_without_the_sdk_tracing_stays_off(monkeypatch, caplog):
    real_import = builtins.__import__

    def no_sdk(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("opentelemetry.sdk"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sdk)
    with caplog.at_level(logging.WARNING, logger="runtime.spans"):
        assert spans.configure_tracing("test", {"OTEL_TRACES_EXPORTER": "otlp"}) is False
    assert not spans.enabled() and "not installed" in caplog.text
    with spans.span("x", PARENT) as current:
        assert current.traceparent == ""


def test_file_mode_writes_children_of_the_given_traceparent(tmp_path: Path):
    out = tmp_path / "spans.jsonl"
    environ = {"OTEL_TRACES_EXPORTER": "file", "OTEL_TRACES_FILE": str(out)}
    assert spans.configure_tracing("unit", environ) is True
    with spans.span("outer", PARENT, job="j") as current:
        child_parent = current.traceparent
        current.set(outcome="ok")
    spans.record("later", child_parent, 1_000, 2_000)
    with spans.span("root", "not-a-traceparent"):
        pass
    outer, later, root = (json.loads(line) for line in out.read_text().splitlines())
    assert outer["name"] == "outer" and outer["parent_id"] == "0x00f067aa0ba902b7"
    assert outer["context"]["trace_id"] == "0x4bf92f3577b34da6a3ce929d0e0e4736"
    assert outer["attributes"] == {"job": "j", "outcome": "ok"}
    ids = outer["context"]
    assert child_parent == f"00-{ids['trace_id'][2:]}-{ids['span_id'][2:]}-01"
    assert later["parent_id"] == outer["context"]["span_id"]
    assert root["parent_id"] is None
    assert outer["resource"]["attributes"]["service.name"] == "unit"


def test_unknown_exporters_and_a_missing_file_leave_spans_off():
    assert not spans.configure_tracing("t", {"OTEL_TRACES_EXPORTER": "zipkin"})
    assert not spans.configure_tracing("t", {"OTEL_TRACES_EXPORTER": "file"})
    assert not spans.enabled()
