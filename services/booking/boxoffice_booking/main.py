"""`boxoffice-api`: serve the booking API with uvicorn."""

from __future__ import annotations

import os
import tempfile

import uvicorn
from boxoffice_settings import get_settings
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, serve_metrics


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
        "boxoffice_booking.app:create_app",
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
