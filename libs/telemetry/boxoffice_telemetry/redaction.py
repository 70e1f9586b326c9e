"""Spans leave the process without personal data: no query string, email address or phone.

`RedactingSpanProcessor` wraps the processor that exports (batch or simple) and hands it a
copy of each ended span with its name, attributes, and events' attributes redacted. The copy is
made in `on_end` because instrumentations set attributes at any time between start and end
(the SDK has no hook in between; see opentelemetry-python issue 4424):

- URL-valued attributes (`http.url`, `url.full`, `http.target`, ...) lose their query string,
  which is where `customer_email=` and other filters travel;
- `url.query` is dropped;
- every other string is passed through the log mask (`mask_personal_data`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor

from boxoffice_telemetry.logs import mask_personal_data

URL_ATTRIBUTES = frozenset(
    {"http.url", "url.full", "http.target", "http.route.raw", "url.original"}
)
DROPPED_ATTRIBUTES = frozenset({"url.query", "http.query"})
REDACTED_QUERY = "?<redacted>"


def redact_url(value: str) -> str:
    """The URL without its query string (and fragment)."""
    base, sep, _ = value.partition("?")
    base = base.partition("#")[0]
    return mask_personal_data(base) + (REDACTED_QUERY if sep else "")


def _redact_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return redact_url(value) if key in URL_ATTRIBUTES else mask_personal_data(value)
    if isinstance(value, tuple | list):
        return tuple(mask_personal_data(v) if isinstance(v, str) else v for v in value)
    return value


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: _redact_value(key, value)
        for key, value in (attributes or {}).items()
        if key not in DROPPED_ATTRIBUTES
    }


def redacted(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` with its name, attributes and events' attributes redacted."""
    events: Sequence[Event] = [
        Event(e.name, redact_attributes(e.attributes), e.timestamp) for e in span.events
    ]
    return ReadableSpan(
        name=mask_personal_data(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact_attributes(span.attributes),
        events=events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanProcessor(SpanProcessor):
    """Give `delegate` (the exporting processor) redacted copies of ended spans."""

    def __init__(self, delegate: SpanProcessor) -> None:
        self.delegate = delegate

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.delegate.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.delegate.on_end(redacted(span))

    def shutdown(self) -> None:
        self.delegate.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.delegate.force_flush(timeout_millis)
