"""HTTP RED metrics and log context for the API, by route template, method and status class.

Names follow prometheus-fastapi-instrumentator (`http_requests_total{handler,method,status}`
with `status` grouped as `2xx`), so dashboards built for it work here. The handler is the
route template (`/v1/bookings/{booking_id}`), never the raw path: ids stay out of labels.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import FastAPI
from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Message, Receive, Scope, Send

from boxoffice_telemetry.asgi import HttpMiddleware
from boxoffice_telemetry.logs import request_route
from boxoffice_telemetry.tracing import tracing_enabled

UNMATCHED = "none"
# Seconds: the API's SLO is about 300 ms; buckets resolve around it.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10)
NOT_INSTRUMENTED = frozenset({"/metrics", "/healthz", "/readyz"})

REQUESTS = Counter("http_requests", "HTTP requests answered", ["handler", "method", "status"])
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["handler", "method", "status"],
    buckets=DURATION_BUCKETS,
)
IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being answered now",
    ["method"],
    multiprocess_mode="livesum",
)


def route_template(scope: Scope) -> str:
    """The matched route's path template, or `none` when no route matched."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else UNMATCHED


def status_class(status: int) -> str:
    return f"{status // 100}xx"


class HttpMetricsMiddleware(HttpMiddleware):
    """Counts and times every request; its log lines name the route and method."""

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope["method"])
        status = 500  # unless a response starts: an exception escaping is a 500 to the client

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                # The server span ends with the response; name it by its route now.
                span = trace.get_current_span()
                handler = route_template(scope)
                if span.is_recording() and handler != UNMATCHED:
                    span.update_name(f"{method} {handler}")
                    span.set_attribute("http.route", handler)
            await send(message)

        started = time.perf_counter()
        # Routing fills scope["route"] later, in place; log lines read it when they are written.
        token = request_route.set(lambda: route_template(scope))
        structlog.contextvars.bind_contextvars(method=method)
        IN_PROGRESS.labels(method).inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            IN_PROGRESS.labels(method).dec()
            handler = route_template(scope)
            structlog.contextvars.unbind_contextvars("method")
            request_route.reset(token)
            if handler not in NOT_INSTRUMENTED:
                labels = (handler, method, status_class(status))
                REQUESTS.labels(*labels).inc()
                DURATION.labels(*labels).observe(time.perf_counter() - started)


def _span_details(scope: Scope) -> tuple[str, dict[str, str]]:
    """The server span's first name; HttpMetricsMiddleware names the route once it is known."""
    return str(scope.get("method", "HTTP")), {}


def instrument_fastapi(app: FastAPI) -> None:
    """RED metrics and a span per request (`/metrics` is served on the metrics port).

    The span comes from the ASGI instrumentation rather than FastAPIInstrumentor: to name a
    span that one matches the request against every route of the app, and with FastAPI 0.165
    that builds pydantic schemas on every request (37 % of the API's CPU under `make bench`'s
    hot-seat burst). Routing already put the route in the scope; HttpMetricsMiddleware reads
    it there.
    """
    app.add_middleware(HttpMetricsMiddleware)
    if tracing_enabled():
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.util.http import parse_excluded_urls

        app.add_middleware(
            OpenTelemetryMiddleware,
            excluded_urls=parse_excluded_urls(",".join(sorted(NOT_INSTRUMENTED))),
            default_span_details=_span_details,
            exclude_spans=["receive", "send"],
        )
