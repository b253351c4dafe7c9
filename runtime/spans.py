"""OpenTelemetry spans, optional and off by default.

`configure_tracing(role)` turns them on when `OTEL_TRACES_EXPORTER` says where they go:

- `otlp`: OTLP/HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`), batched;
- `file`: one JSON span per line appended to `OTEL_TRACES_FILE`, written as each span ends;
- `console`: the same JSON lines on stderr.

The SDK and the exporter are the `otel` extra; without them `configure_tracing` logs a warning
and spans stay off. While off, `span()` and `record()` cost one check of a module global.
Each span's parent is the W3C `traceparent` the event log carries, so one trace covers the
request, its inference and its projection.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import IO, Any

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "file", "console")
AttributeValue = str | bool | int | float

_tracer: Any = None  # an opentelemetry Tracer once configure_tracing turned spans on
_provider: Any = None


class Current:
    """The span a `with span(...)` block runs in; with spans off, a stand-in that keeps nothing."""

    __slots__ = ("_span",)

    def __init__(self, otel_span: Any = None) -> None:
        self._span = otel_span

    @property
    def traceparent(self) -> str:
        """This span's W3C traceparent, to hand to its children; "" with spans off."""
        if self._span is None:
            return ""
        context = self._span.get_span_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"

    def set(self, **attributes: AttributeValue) -> None:
        if self._span is not None:
            self._span.set_attributes(attributes)

    def fail(self, description: str) -> None:
        """Mark the span as an error (the job it covers failed)."""
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, description))


_OFF = Current()
_OFF_CONTEXT: AbstractContextManager[Current] = contextlib.nullcontext(_OFF)


def enabled() -> bool:
    return _tracer is not None


def span(
    name: str, traceparent: str = "", **attributes: AttributeValue
) -> AbstractContextManager[Current]:
    """A span around the block, child of `traceparent` (a new trace when it is empty or invalid).

    With spans off this is a shared no-op context manager yielding a `Current` that keeps nothing.
    """
    if _tracer is None:
        return _OFF_CONTEXT
    return _started(name, traceparent, attributes)


@contextlib.contextmanager
def _started(
    name: str, traceparent: str, attributes: Mapping[str, AttributeValue]
) -> Iterator[Current]:
    with _tracer.start_as_current_span(
        name, context=_parent(traceparent), attributes=attributes
    ) as otel_span:
        yield Current(otel_span)


def record(
    name: str, traceparent: str, start_ns: int, end_ns: int, **attributes: AttributeValue
) -> None:
    """A span that already happened, from `start_ns` to `end_ns` (time.time_ns() values)."""
    if _tracer is None:
        return
    otel_span = _tracer.start_span(
        name, context=_parent(traceparent), attributes=attributes, start_time=start_ns
    )
    otel_span.end(end_time=end_ns)


def _parent(traceparent: str) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # An empty or invalid traceparent extracts to an empty context: the span starts a trace.
    return TraceContextTextMapPropagator().extract({"traceparent": traceparent.strip()})


def configure_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Turn spans on as OTEL_TRACES_EXPORTER asks; returns whether they are on.

    Unset, empty or `none`: off. Calling it again once spans are on changes nothing.
    """
    global _tracer, _provider
    env = os.environ if environ is None else environ
    mode = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if _tracer is not None or mode in ("", "none"):
        return _tracer is not None
    if mode not in EXPORTERS:
        log.warning(
            "unknown OTEL_TRACES_EXPORTER %r (expected one of %s); spans stay off",
            mode,
            ", ".join(EXPORTERS),
        )
        return False
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        log.warning(
            "OTEL_TRACES_EXPORTER=%s but the OpenTelemetry SDK is not installed "
            "(pip install 'inferflow[otel]'); spans stay off",
            mode,
        )
        return False
    try:
        processor = _processor(mode, env)
    except ImportError:
        log.warning(
            "the OTLP exporter is not installed (pip install 'inferflow[otel]'); spans stay off"
        )
        return False
    if processor is None:
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(processor)
    _provider, _tracer = provider, provider.get_tracer("inferflow")
    log.info("tracing on", extra={"exporter": mode, "service": service_name})
    return True


def _processor(mode: str, env: Mapping[str, str]) -> Any:
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and _HEADERS itself.
        return BatchSpanProcessor(OTLPSpanExporter())
    if mode == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr, formatter=_json_line))
    path = env.get("OTEL_TRACES_FILE", "").strip()
    if not path:
        log.warning("OTEL_TRACES_EXPORTER=file needs OTEL_TRACES_FILE; spans stay off")
        return None
    return SimpleSpanProcessor(_file_exporter(path))


def _json_line(otel_span: Any) -> str:
    return str(otel_span.to_json(indent=None)) + "\n"


def _file_exporter(path: str) -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class JsonLinesExporter(SpanExporter):
        """Appends one JSON span per line; several processes may share the file."""

        def __init__(self, target: str) -> None:
            # Unbuffered append: each export is one write at the end of the file.
            self._out: IO[bytes] = open(target, "ab", buffering=0)  # noqa: SIM115
            self._lock = threading.Lock()

        def export(self, spans: Sequence[Any]) -> Any:
            lines = "".join(_json_line(s) for s in spans)
            with self._lock:
                self._out.write(lines.encode())
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            with self._lock:
                self._out.close()

    return JsonLinesExporter(path)


def reset() -> None:
    """Flush and turn spans off again (tests)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None
