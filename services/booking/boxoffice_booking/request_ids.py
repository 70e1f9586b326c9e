"""A `Request-Id` on every answer, in every problem body and on every log line of a request.

A caller's own `Request-Id` or `X-Request-Id` is kept when it is well formed (so one id can
follow a request through the caller's systems); otherwise the API makes one. The id, and the
trace id when the request is traced, are kept in the ASGI scope, where the problem handlers
read them (the handler of an unexpected error runs outside every middleware).
"""

from __future__ import annotations

import re
import uuid

import structlog
from boxoffice_telemetry.asgi import HttpMiddleware
from opentelemetry import trace
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

HEADER = "Request-Id"
REQUEST_ID = "boxoffice.request_id"
TRACE_ID = "boxoffice.trace_id"
# Printable, no spaces or separators a log or header parser could trip on; long enough to be
# unique, short enough to quote.
WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,127}")


def request_id_of(headers: Headers) -> str:
    """The caller's id if well formed, else a new one."""
    for name in ("request-id", "x-request-id"):
        given = headers.get(name)
        if given is not None and WELL_FORMED.fullmatch(given):
            return given
    return str(uuid.uuid4())


def request_context(scope: Scope) -> dict[str, str]:
    """`request_id` and `trace_id` of the request, for a problem body."""
    ids = {"request_id": scope.get(REQUEST_ID), "trace_id": scope.get(TRACE_ID)}
    return {name: str(value) for name, value in ids.items() if value}


class RequestIdMiddleware(HttpMiddleware):
    """Runs inside the tracing middleware (to know the trace) and outside everything else."""

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_of(Headers(scope=scope))
        scope[REQUEST_ID] = request_id
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            scope[TRACE_ID] = format(context.trace_id, "032x")
        header = (b"request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
