"""`boxoffice-scheduler`: Celery Beat."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_settings import get_settings
from boxoffice_telemetry.domain import SCHEDULER_LEADER
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import setup_producer

from boxoffice_scheduler.schedule import build_schedule

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    configure_logging("scheduler", settings.log_level)
    app = create_celery_app("boxoffice-scheduler", settings)
    setup_producer(
        app, service="scheduler", metrics_port=settings.metrics_port, redis_url=settings.redis_url
    )
    app.conf.beat_schedule = build_schedule(settings)
    state_dir = Path(settings.scheduler_state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    args = argv if argv is not None else sys.argv[1:]
    # Without leader election this one scheduler is the leader; an elected scheduler sets the
    # gauge when it gains or loses the lease instead.
    SCHEDULER_LEADER.set(1)
    log.info("scheduler starting", extra={"jobs": sorted(app.conf.beat_schedule)})
    app.start(
        [
            "beat",
            "--loglevel=WARNING",
            f"--schedule={state_dir / 'celerybeat-schedule'}",
            *args,
        ]
    )


if __name__ == "__main__":
    main()
