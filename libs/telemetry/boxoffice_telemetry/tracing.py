"""OpenTelemetry tracing: one provider per process, exporters chosen by the standard variables.

Spans are always made (so logs carry trace ids and context crosses services), but recorded
only when they have somewhere to go: `OTEL_TRACES_EXPORTER` (`otlp`, `console`, `none`), or
an OTLP endpoint in `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or
`BOXOFFICE_TRACES_FILE` (JSON lines, for tests and debugging). `OTEL_SDK_DISABLED=true` turns
tracing off. Service name, resource attributes and the sampler follow `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES` and `OTEL_TRACES_SAMPLER` as the SDK reads them.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, Decision, Sampler, SamplingResult
from opentelemetry.util.types import Attributes
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext

from boxoffice_telemetry.redaction import RedactingSpanProcessor

log = logging.getLogger(__name__)

TRACES_FILE_ENV = "BOXOFFICE_TRACES_FILE"
TRACER_NAME = "boxoffice"
_SPANS_KEY = "boxoffice_sql_spans"

_configured_pid: int | None = None
_lock = threading.Lock()


def tracing_enabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true"


def exporter_names() -> list[str]:
    """Which exporters to run: the explicit list, else OTLP only if an endpoint is configured."""
    explicit = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if explicit:
        return [name.strip() for name in explicit.split(",") if name.strip() not in ("", "none")]
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return ["otlp"] if any(os.environ.get(v) for v in endpoints) else []


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON line (one write, so processes may share)."""

    def __init__(self, path: str) -> None:
        self._path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(span.to_json(indent=None) + "\n" for span in spans)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class BackgroundClientCallFilter(Sampler):
    """Drops client spans that start a trace; otherwise defers to the configured sampler.

    A Redis or SQL call outside any request or task is the workers' and relay's housekeeping
    (broker polling, task events, the outbox poll every 50 ms): thousands of one-span traces
    that bury the real ones. Inside a request or task the same calls are kept.
    """

    def __init__(self, delegate: Sampler) -> None:
        self._delegate = delegate

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if kind is trace.SpanKind.CLIENT and not parent.is_valid:
            return SamplingResult(Decision.DROP)
        return self._delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"BackgroundClientCallFilter{{{self._delegate.get_description()}}}"


def configure_tracing(service: str) -> bool:
    """Install this process's tracer provider once; True if tracing is on.

    Prefork workers call this in each child after the fork (`worker_process_init`), never in
    the parent: export threads do not survive a fork.
    """
    global _configured_pid
    if not tracing_enabled():
        return False
    with _lock:
        if _configured_pid == os.getpid():
            return True
        # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default name.
        resource = Resource.create({SERVICE_NAME: f"boxoffice-{service}"}).merge(
            OTELResourceDetector().detect()
        )
        exporters = exporter_names()
        traces_file = os.environ.get(TRACES_FILE_ENV)  # also read by spans_recorded()
        # TracerProvider() reads OTEL_TRACES_SAMPLER; wrap whatever it chose. With nowhere to
        # send spans, record none: spans still get trace and span ids, which logs carry and
        # messages propagate (flagged not sampled), at a fraction of the cost of recording
        # (measured by `make bench`: the hold path's biggest overhead after the SQL).
        sampler: Sampler = (
            BackgroundClientCallFilter(TracerProvider().sampler)
            if exporters or traces_file
            else ALWAYS_OFF
        )
        provider = TracerProvider(resource=resource, sampler=sampler)
        for name in exporters:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(
                    RedactingSpanProcessor(BatchSpanProcessor(OTLPSpanExporter()))
                )
            elif name == "console":
                provider.add_span_processor(
                    RedactingSpanProcessor(SimpleSpanProcessor(ConsoleSpanExporter()))
                )
            else:
                log.warning("unknown OTEL_TRACES_EXPORTER %r ignored", name)
        if traces_file:
            provider.add_span_processor(
                RedactingSpanProcessor(SimpleSpanProcessor(JsonLinesSpanExporter(traces_file)))
            )
        trace.set_tracer_provider(provider)
        _configured_pid = os.getpid()
    if not spans_recorded():
        # Redis and SQL calls start no spans of their own, only leaves that would be dropped.
        return True
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if not RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().instrument()
    return True


def spans_recorded() -> bool:
    """Whether this process records spans (it has an exporter or a traces file)."""
    return bool(exporter_names() or os.environ.get(TRACES_FILE_ENV))


def shutdown_tracing() -> None:
    """Flush and stop the exporters (on a clean exit)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()


@functools.cache
def tracer() -> trace.Tracer:
    # One tracer per process: get_tracer builds a new one on every call. Before a provider is
    # installed this is the API's proxy, which follows the provider once it is.
    return trace.get_tracer(TRACER_NAME)


def trace_sqlalchemy(engine: Engine) -> None:
    """Add a client span for every statement `engine` runs (statement text, never parameters).

    Event listeners rather than opentelemetry-instrumentation-sqlalchemy: that package does not
    yet accept SQLAlchemy 2.1 and pulls in the asyncio extra.
    """
    if not (tracing_enabled() and spans_recorded()) or getattr(engine, "_boxoffice_traced", False):
        return
    engine._boxoffice_traced = True  # type: ignore[attr-defined]
    # Statements run on kept cursors (boxoffice_db.kept) bypass these events: their cursors
    # make the same spans themselves.
    from boxoffice_db.kept import use_cursor_class

    from boxoffice_telemetry.pg_async import TracedCursor

    use_cursor_class(engine, TracedCursor)
    database = engine.url.database or ""
    system = engine.dialect.name

    @event.listens_for(engine, "before_cursor_execute")
    def _start(
        conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        span = tracer().start_span(
            f"{operation} {database}".strip(),
            kind=trace.SpanKind.CLIENT,
            attributes={
                "db.system": system,
                "db.name": database,
                "db.statement": statement[:2000],
                "db.operation": operation,
            },
        )
        conn.info.setdefault(_SPANS_KEY, []).append(span)

    @event.listens_for(engine, "after_cursor_execute")
    def _end(
        conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        spans = conn.info.get(_SPANS_KEY)
        if spans:
            spans.pop().end()

    @event.listens_for(engine, "handle_error")
    def _error(context: ExceptionContext) -> None:
        conn = context.connection
        spans = conn.info.get(_SPANS_KEY) if conn is not None else None
        if spans:
            span = spans.pop()
            span.record_exception(context.original_exception)
            span.set_status(trace.Status(trace.StatusCode.ERROR))
            span.end()


def current_trace_context() -> dict[str, str]:
    """The W3C trace context (`traceparent`, `tracestate`) of the current span, to carry along."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def inject_into(carrier: MutableMapping[str, Any]) -> None:
    """Write the current trace context into `carrier` (message headers)."""
    propagate.inject(carrier)


def context_from(carrier: Mapping[str, str] | None) -> otel_context.Context | None:
    """The trace context a message carried, or None if it carried none."""
    if not carrier:
        return None
    return propagate.extract(dict(carrier))


@contextmanager
def span_from_carrier(
    name: str,
    carrier: Mapping[str, str] | None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[trace.Span]:
    """A current span whose parent is the context in `carrier` (e.g. an outbox row's)."""
    with tracer().start_as_current_span(
        name, context=context_from(carrier), kind=kind, attributes=attributes
    ) as span:
        yield span


def span_ids() -> tuple[str, str] | None:
    """The current (trace id, span id) in hex, or None outside any span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def spans_in(path: str) -> list[dict[str, Any]]:
    """Read the spans a JsonLinesSpanExporter wrote (for tests and tooling)."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
