"""The API's /metrics (revenue, refunds) is served on the metrics port only, as the workers'."""

from __future__ import annotations

import httpx
from boxoffice_devstack.servers import free_port

from tests.support.live_api import live_api
from tests.support.processes import wait_for_http
from tests.support.stack import Stack


def test_metrics_are_on_the_metrics_port_and_not_on_the_public_port(stack: Stack) -> None:
    port = free_port()
    with live_api(stack, "metrics-api", BOXOFFICE_METRICS_PORT=str(port)) as api:
        wait_for_http(f"http://127.0.0.1:{port}/metrics", timeout=30)
        exposed = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "boxoffice_revenue_minor" in exposed or "http_requests" in exposed
        public = httpx.get(api.base_url + "/metrics", timeout=10)
        assert public.status_code == 404
        assert public.headers["content-type"] == "application/problem+json"
