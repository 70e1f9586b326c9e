"""The booking API as a real uvicorn process on a free port, for contract and client tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from boxoffice_devstack.servers import free_port

from tests.support.processes import ServiceProcess, wait_for_http
from tests.support.stack import API_KEY, Stack


@dataclass
class LiveApi:
    base_url: str
    api_key: str
    process: ServiceProcess


@contextmanager
def live_api(stack: Stack, name: str = "api", **env: str) -> Iterator[LiveApi]:
    """Start `boxoffice-api` against the test stack; stop it (and show its log on failure)."""
    port = free_port()
    process = ServiceProcess(
        name,
        "boxoffice_booking.main",
        stack.env(BOXOFFICE_API_PORT=str(port), **env),
        stack.var / "contract-logs",
    ).start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(base_url + "/readyz", timeout=120)
        yield LiveApi(base_url, API_KEY, process)
    finally:
        process.stop()
