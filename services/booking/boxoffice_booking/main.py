"""`boxoffice-api`: serve the booking API with uvicorn."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from boxoffice_settings import get_settings
from boxoffice_telemetry.heap import freeze_startup_heap
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, serve_metrics
from fastapi import FastAPI


def create_served_app() -> FastAPI:
    """The app as `boxoffice-api` serves it (in each uvicorn worker): once its startup is done
    and before it takes a request, its startup heap is frozen (boxoffice_telemetry.heap).
    In-process tests build `create_app()` and leave the test runner's collector alone."""
    from boxoffice_booking.app import create_app  # in the worker, not uvicorn's supervisor

    app = create_app()
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with started(app):  # boxoffice_booking.app.lifespan: no state
            freeze_startup_heap()
            yield

    app.router.lifespan_context = lifespan
    return app


def main() -> None:
    settings = get_settings()
    configure_logging("booking-api", settings.log_level)
    if settings.api_workers > 1 and not os.environ.get(MULTIPROC_ENV):
        # Worker processes are spawned and import prometheus_client afresh: they see this, and
        # whichever answers /metrics sums them all.
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="boxoffice-metrics-")
    prepare_multiprocess_dir()
    # /metrics on the metrics port, as the workers serve it, never on the public API port.
    serve_metrics(settings.metrics_port)
    uvicorn.run(
        "boxoffice_booking.main:create_served_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_config=None,
        access_log=False,
        # The client address is taken from X-Forwarded-For only through BOXOFFICE_TRUSTED_PROXIES
        # (boxoffice_booking.limits), never as uvicorn would for any local peer.
        proxy_headers=False,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
