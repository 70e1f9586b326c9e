"""Spans leave the process over OTLP/HTTP when, and only when, the OTEL_* variables say so."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from boxoffice_telemetry.tracing import exporter_names
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

EMIT_ONE_SPAN = """
from boxoffice_telemetry.tracing import configure_tracing, shutdown_tracing, tracer
configure_tracing("otlp-test")
with tracer().start_as_current_span("booking held"):
    pass
shutdown_tracing()
"""


class Collector(HTTPServer):
    requests: list[ExportTraceServiceRequest]


class TraceHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector(("127.0.0.1", 0), TraceHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def emit(**env: str) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", EMIT_ONE_SPAN],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_otlp_endpoint_variable_turns_export_on(collector: Collector) -> None:
    emit(
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.server_port}",
        OTEL_SERVICE_NAME="boxoffice-otlp-check",
    )
    spans = [
        (resource, span)
        for request in collector.requests
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [span.name for _, span in spans] == ["booking held"]
    attributes = {a.key: a.value.string_value for a in spans[0][0].resource.attributes}
    assert attributes["service.name"] == "boxoffice-otlp-check"


def test_sdk_disabled_exports_nothing_even_with_an_endpoint(collector: Collector) -> None:
    emit(
        OTEL_SDK_DISABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector.server_port}",
    )
    assert collector.requests == []


@pytest.mark.parametrize(
    ("env", "exporters"),
    [
        ({}, []),  # off by default
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
    ],
)
def test_exporters_follow_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], exporters: list[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert exporter_names() == exporters
