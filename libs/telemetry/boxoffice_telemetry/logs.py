"""JSON log lines through structlog, for the standard library's loggers too.

Every line has `timestamp`, `level`, `service`, `logger`, the `trace_id` and `span_id` of the
current span, and the `route` (HTTP) or `task` (Celery) it belongs to. Email addresses and
phone numbers are masked wherever they appear: logs carry no personal data.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

import structlog
from opentelemetry import trace

# Set by the HTTP middleware: reads the matched route template when a line is written.
request_route: ContextVar[Callable[[], str] | None] = ContextVar("request_route", default=None)

# Any address, internationalised ones too (`josé@exämple.com`, `用户@例子.广告`), and one
# percent-encoded in a URL (`jos%C3%A9%40ex%C3%A4mple.com`): a run of characters that are
# not space or punctuation around an `@`, with a dot in the domain.
_NOT_IN_ADDRESS = r"\s@<>()\[\]{},;:\"'=&?/\\|"
_LOCAL = rf"[^{_NOT_IN_ADDRESS}]+"
_LABEL = rf"[^{_NOT_IN_ADDRESS}.]+"
EMAIL = re.compile(rf"{_LOCAL}(?:@|%40){_LABEL}(?:\.{_LABEL})+")
# International phone numbers as the API takes them: a + and 8 to 15 digits. (Bare digit runs
# are left alone: they are too often ids or timestamps.)
PHONE = re.compile(r"\+\d[\d ()-]{6,17}\d")
MASK_EMAIL = "<email>"
MASK_PHONE = "<phone>"
# Fields whose values are personal whatever they look like.
PERSONAL_FIELDS = frozenset({"email", "customer_email", "phone", "customer_phone", "to"})

EventDict = MutableMapping[str, Any]


def mask_personal_data(text: str) -> str:
    """Replace email addresses and phone numbers in `text`."""
    # Most values (ids, names, levels) hold neither an `@` nor a `+`: no regex runs on them.
    if "@" in text or "%40" in text:
        text = EMAIL.sub(MASK_EMAIL, text)
    if "+" in text:
        text = PHONE.sub(MASK_PHONE, text)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {k: "<redacted>" if k in PERSONAL_FIELDS else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def scrub_personal_data(_: Any, __: str, event: EventDict) -> EventDict:
    """structlog processor: no email address or phone number leaves the process in a log."""
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    for key, value in list(event.items()):
        if key in PERSONAL_FIELDS:
            event[key] = "<redacted>"
        elif key not in ("timestamp", "trace_id", "span_id"):
            event[key] = _scrub(value)
    return event


def add_trace_context(_: Any, __: str, event: EventDict) -> EventDict:
    """structlog processor: the current span's trace and span ids (W3C hex)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def add_route(_: Any, __: str, event: EventDict) -> EventDict:
    reader = request_route.get()
    if reader is not None and "route" not in event:
        event["route"] = reader()
    return event


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stdout as one JSON object a line, tagged with the service."""

    # A processor, not a context variable: worker threads start with an empty context.
    def add_service(_: Any, __: str, event: EventDict) -> EventDict:
        event.setdefault("service", service)
        return event

    shared: list[structlog.types.Processor] = [
        add_service,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.add_logger_name,
        add_trace_context,
        add_route,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_personal_data,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
