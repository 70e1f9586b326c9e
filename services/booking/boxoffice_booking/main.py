"""`boxoffice-api`: serve the booking API with uvicorn."""

from __future__ import annotations

import uvicorn
from boxoffice_settings import get_settings
from boxoffice_telemetry.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging("booking-api", settings.log_level)
    uvicorn.run(
        "boxoffice_booking.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=20,
    )


if __name__ == "__main__":
    main()
