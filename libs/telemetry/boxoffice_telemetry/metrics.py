"""Prometheus metrics endpoints for processes that are not the HTTP API."""

from __future__ import annotations

from prometheus_client import start_http_server


def serve_metrics(port: int) -> None:
    """Serve /metrics on `port` in a background thread; port 0 disables it."""
    if port:
        start_http_server(port, addr="0.0.0.0")  # noqa: S104 - scraped from other pods
