"""Telemetry building blocks: pool detection, log scrubbing and trace ids, HTTP labels."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator

import httpx
import pytest
from boxoffice_telemetry.http import HttpMetricsMiddleware, route_template, status_class
from boxoffice_telemetry.logs import configure_logging, mask_personal_data
from boxoffice_telemetry.wiring import worker_pool
from fastapi import FastAPI, HTTPException
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import REGISTRY


@pytest.mark.parametrize(
    ("args", "pool"),
    [
        (["worker", "--pool=threads"], "threads"),
        (["worker", "--pool=threads", "--pool=prefork"], "prefork"),
        (["worker", "--pool=threads", "-P", "gevent"], "gevent"),
        (["worker", "-Psolo"], "solo"),
        (["worker"], "prefork"),
    ],
)
def test_worker_pool_is_the_last_one_given(args: list[str], pool: str) -> None:
    assert worker_pool(args) == pool


def test_emails_and_phone_numbers_are_masked() -> None:
    text = "mail ada.l@example.co.uk or call +91 98000 00001 about booking 4af3-1234567890"
    masked = mask_personal_data(text)
    assert "example" not in masked
    assert "98000" not in masked
    assert "4af3-1234567890" in masked


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("unit-test")
    stream = io.StringIO()
    assert isinstance(root.handlers[0], logging.StreamHandler)
    root.handlers[0].setStream(stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


def test_log_lines_are_json_with_service_trace_ids_and_no_personal_data(
    captured_log: io.StringIO,
) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        logging.getLogger("boxoffice.test").info(
            "sent to %s", "ada@example.com", extra={"customer_email": "ada@example.com"}
        )
    record = json.loads(captured_log.getvalue().splitlines()[-1])
    assert record["service"] == "unit-test"
    assert record["level"] == "info"
    assert record["logger"] == "boxoffice.test"
    assert record["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert record["span_id"] == format(span.get_span_context().span_id, "016x")
    assert "ada@example.com" not in captured_log.getvalue()
    assert record["event"] == "sent to <email>"
    assert record["customer_email"] == "<redacted>"
    assert "timestamp" in record


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_http_metrics_use_the_route_template_and_status_class(
    captured_log: io.StringIO,
) -> None:
    app = FastAPI()
    app.add_middleware(HttpMetricsMiddleware)

    @app.get("/v1/things/{thing_id}")
    def read_thing(thing_id: uuid.UUID) -> dict[str, str]:
        logging.getLogger("boxoffice.test").info("reading")
        if thing_id.int == 0:
            raise HTTPException(404)
        return {"id": str(thing_id)}

    handler = "/v1/things/{thing_id}"
    ok = {"handler": handler, "method": "GET", "status": "2xx"}
    missing = {"handler": handler, "method": "GET", "status": "4xx"}
    unmatched = {"handler": "none", "method": "GET", "status": "4xx"}
    before = [sample("http_requests_total", labels) for labels in (ok, missing, unmatched)]

    async def call(paths: list[str]) -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [(await client.get(path)).status_code for path in paths]

    codes = asyncio.run(
        call([f"/v1/things/{uuid.uuid4()}", f"/v1/things/{uuid.UUID(int=0)}", "/nowhere"])
    )
    assert codes == [200, 404, 404]
    after = [sample("http_requests_total", labels) for labels in (ok, missing, unmatched)]
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    assert sample("http_request_duration_seconds_count", ok) >= 1
    lines = [json.loads(line) for line in captured_log.getvalue().splitlines()]
    assert {(r.get("route"), r.get("method")) for r in lines if r["event"] == "reading"} == {
        (handler, "GET")
    }


def test_status_class_and_unmatched_route() -> None:
    assert status_class(201) == "2xx"
    assert status_class(503) == "5xx"
    assert route_template({"type": "http"}) == "none"


def test_client_calls_outside_any_trace_are_dropped_inside_kept() -> None:
    from boxoffice_telemetry.tracing import BackgroundClientCallFilter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON
    from opentelemetry.trace import SpanKind

    exported = InMemorySpanExporter()
    provider = TracerProvider(sampler=BackgroundClientCallFilter(ALWAYS_ON))
    provider.add_span_processor(SimpleSpanProcessor(exported))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("BRPOP", kind=SpanKind.CLIENT):
        pass
    with (
        tracer.start_as_current_span("POST /v1/bookings", kind=SpanKind.SERVER),
        tracer.start_as_current_span("INSERT boxoffice", kind=SpanKind.CLIENT),
    ):
        pass
    assert [s.name for s in exported.get_finished_spans()] == [
        "INSERT boxoffice",
        "POST /v1/bookings",
    ]


def test_celerys_routine_task_lines_show_at_debug_only() -> None:
    from boxoffice_messaging.worker import quiet_routine_task_lines
    from celery.app.trace import LOG_FAILURE, LOG_SUCCESS

    quiet_routine_task_lines()
    quiet_routine_task_lines()  # idempotent: one filter, not two
    trace_logger = logging.getLogger("celery.app.trace")
    assert len(trace_logger.filters) == 1

    def passes(template: str) -> bool:
        record = trace_logger.makeRecord(trace_logger.name, logging.INFO, "", 0, template, (), None)
        return all(f.filter(record) for f in trace_logger.filters)  # type: ignore[union-attr]

    root = logging.getLogger()
    strategy = logging.getLogger("celery.worker.strategy")
    level, strategy_level = root.level, strategy.level
    try:
        root.setLevel(logging.INFO)
        assert not passes(LOG_SUCCESS)
        assert passes(LOG_FAILURE)
        # "Received", the strategy's only INFO line, is off at the level Celery checks once
        # at start (so it is never built); its errors still show.
        quiet_routine_task_lines()
        assert not strategy.isEnabledFor(logging.INFO)
        assert strategy.isEnabledFor(logging.ERROR)
        root.setLevel(logging.DEBUG)
        assert passes(LOG_SUCCESS)
    finally:
        root.setLevel(level)
        strategy.setLevel(strategy_level)
