"""`boxoffice-scheduler`: Celery Beat with leader election; only the leader sends."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from boxoffice_messaging.celery_app import create_celery_app
from boxoffice_messaging.redis_client import redis_from_settings
from boxoffice_settings import get_settings
from boxoffice_telemetry.heap import freeze_startup_heap
from boxoffice_telemetry.logs import configure_logging
from boxoffice_telemetry.wiring import cluster_collector, setup_producer
from celery.beat import Service

from boxoffice_scheduler.election import LEADING
from boxoffice_scheduler.scheduler import LeaderScheduler

log = logging.getLogger(__name__)


def _exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    # Raised in the beat loop, which then closes the scheduler and so hands the lease over.
    raise SystemExit(0)


def main() -> None:
    settings = get_settings()
    configure_logging("scheduler", settings.log_level)
    app = create_celery_app("boxoffice-scheduler", settings)
    # The leader alone exports queue lengths and worker liveness: one copy per release.
    redis = redis_from_settings(settings, socket_timeout=2, socket_connect_timeout=2)
    setup_producer(
        service="scheduler",
        metrics_port=settings.metrics_port,
        collectors=[cluster_collector(app, redis, LEADING.is_set)],
    )
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    # The leader gauge (boxoffice_scheduler_leader) is set by the election as the lease moves.
    service = Service(app, max_interval=1, scheduler_cls=LeaderScheduler)
    freeze_startup_heap()
    log.info("beat: starting")
    service.start()
    log.info("beat: stopped")


if __name__ == "__main__":
    main()
